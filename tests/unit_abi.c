/* The plugin ABI's layout, pinned: sizeof and offsetof of every struct that
 * crosses the plugin boundary (akt/plugin.h and what it hands out: networks'
 * outputs and the network itself, tensors, the tape, errors, the RNG), and
 * the size of its enums, as recorded for AKT_PLUGIN_ABI 2 on LP64 Linux
 * (x86-64, aarch64).
 *
 * A plugin binary is built against one layout; a host with another would
 * read garbage through it. So any change here must come with a new ABI
 * number, which makes the loader refuse old plugins by name: this test fails
 * when the layout differs from the recorded one while AKT_PLUGIN_ABI is
 * still the number it was recorded for, and when the number moved on without
 * the table being recorded anew (AKT_ABI_PRINT=1 prints the table to paste
 * below). Fields appended at the end of a struct with a size field are the
 * one compatible change, and they also change sizeof: record them with the
 * bump all the same, or keep the number and say why in the commit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akt/plugin.h"
#include "akt/student.h"

#define RECORDED_ABI 2u

struct row {
    const char *what;
    size_t now, recorded;
};

#define S(s, n) {"sizeof(struct " #s ")", sizeof(struct s), n}
#define F(s, f, n) {"offsetof(struct " #s ", " #f ")", offsetof(struct s, f), n}
#define E(e, n) {"sizeof(enum " #e ")", sizeof(enum e), n}

static const struct row layout[] = {
    S(akt_plugin, 112),
    F(akt_plugin, abi, 0),
    F(akt_plugin, size, 4),
    F(akt_plugin, param_size, 8),
    F(akt_plugin, kind, 12),
    F(akt_plugin, name, 16),
    F(akt_plugin, summary, 24),
    F(akt_plugin, params, 32),
    F(akt_plugin, n_params, 40),
    F(akt_plugin, create, 48),
    F(akt_plugin, destroy, 56),
    F(akt_plugin, ops, 64),
    S(akt_generator_ops, 48),
    F(akt_generator_ops, sample, 0),
    F(akt_generator_ops, loss, 8),
    F(akt_generator_ops, update, 16),
    F(akt_generator_ops, state, 24),
    F(akt_generator_ops, needs_student, 32),
    F(akt_generator_ops, lr, 36),
    F(akt_generator_ops, logit_loss, 40),
    S(akt_loss_ops, 24),
    F(akt_loss_ops, compute, 0),
    F(akt_loss_ops, needs_features, 8),
    F(akt_loss_ops, prepare, 16),
    S(akt_param_def, 72),
    F(akt_param_def, key, 0),
    F(akt_param_def, type, 8),
    F(akt_param_def, def, 16),
    F(akt_param_def, lo, 24),
    F(akt_param_def, hi, 32),
    F(akt_param_def, choices, 40),
    F(akt_param_def, help, 48),
    F(akt_param_def, def_text, 56),
    F(akt_param_def, check, 64),
    S(akt_param_values, 2504),
    F(akt_param_values, size, 0),
    F(akt_param_values, n, 4),
    F(akt_param_values, v, 8),
    F(akt_param_values, text, 200),
    S(akt_host, 88),
    F(akt_host, abi, 0),
    F(akt_host, size, 4),
    F(akt_host, rng, 8),
    F(akt_host, num_classes, 16),
    F(akt_host, batch, 20),
    F(akt_host, wbits, 24),
    F(akt_host, abits, 28),
    F(akt_host, epoch, 32),
    F(akt_host, iter, 36),
    F(akt_host, teacher, 40),
    F(akt_host, teacher_forward, 48),
    F(akt_host, student_forward, 56),
    F(akt_host, metric, 64),
    F(akt_host, log, 72),
    F(akt_host, ctx, 80),
    S(akt_gen_batch, 32),
    F(akt_gen_batch, size, 0),
    F(akt_gen_batch, x, 8),
    F(akt_gen_batch, labels, 16),
    F(akt_gen_batch, target, 24),
    S(akt_loss_input, 48),
    F(akt_loss_input, size, 0),
    F(akt_loss_input, teacher, 8),
    F(akt_loss_input, student, 16),
    F(akt_loss_input, labels, 24),
    F(akt_loss_input, target, 32),
    F(akt_loss_input, generator_logit_loss, 40),
    S(akt_resnet_out, 88),
    F(akt_resnet_out, size, 0),
    F(akt_resnet_out, logits, 8),
    F(akt_resnet_out, n_features, 16),
    F(akt_resnet_out, features, 24),
    F(akt_resnet_out, feature_stage, 32),
    F(akt_resnet_out, n_bn, 40),
    F(akt_resnet_out, bn_inputs, 48),
    F(akt_resnet_out, bn_index, 56),
    F(akt_resnet_out, n_acts, 64),
    F(akt_resnet_out, acts, 72),
    F(akt_resnet_out, fc_weight, 80),
    S(akt_resnet, 96),
    F(akt_resnet, size, 0),
    F(akt_resnet, depth, 4),
    F(akt_resnet, blocks_per_stage, 8),
    F(akt_resnet, num_classes, 12),
    F(akt_resnet, shortcut, 16),
    F(akt_resnet, mean, 20),
    F(akt_resnet, std, 32),
    F(akt_resnet, bn_eps, 44),
    F(akt_resnet, n_features, 48),
    F(akt_resnet, n_bn, 52),
    F(akt_resnet, n_acts, 56),
    F(akt_resnet, n_params, 60),
    F(akt_resnet, params, 64),
    F(akt_resnet, values, 72),
    F(akt_resnet, grads, 80),
    F(akt_resnet, n_values, 88),
    S(akt_param, 96),
    F(akt_param, name, 0),
    F(akt_param, ndim, 48),
    F(akt_param, shape, 52),
    F(akt_param, offset, 72),
    F(akt_param, n, 80),
    F(akt_param, kind, 88),
    S(akt_tensor, 64),
    F(akt_tensor, data, 0),
    F(akt_tensor, grad, 8),
    F(akt_tensor, ndim, 16),
    F(akt_tensor, shape, 20),
    F(akt_tensor, n, 40),
    F(akt_tensor, requires_grad, 48),
    F(akt_tensor, gs, 56),
    S(akt_grad_state, 32),
    F(akt_grad_state, next, 0),
    F(akt_grad_state, grad, 8),
    F(akt_grad_state, n, 16),
    F(akt_grad_state, written, 24),
    S(akt_node, 152),
    F(akt_node, backward, 0),
    F(akt_node, name, 8),
    F(akt_node, out, 16),
    F(akt_node, in, 24),
    F(akt_node, saved, 56),
    F(akt_node, labels, 88),
    F(akt_node, ip, 96),
    F(akt_node, fp, 128),
    F(akt_node, flags, 144),
    S(akt_tape, 72),
    F(akt_tape, arena, 0),
    F(akt_tape, nodes, 40),
    F(akt_tape, n_nodes, 48),
    F(akt_tape, cap_nodes, 52),
    F(akt_tape, recording, 56),
    F(akt_tape, lazy, 64),
    S(akt_arena, 40),
    F(akt_arena, head, 0),
    F(akt_arena, first, 8),
    F(akt_arena, block_size, 16),
    F(akt_arena, peak, 24),
    F(akt_arena, used, 32),
    S(akt_error, 1028),
    F(akt_error, code, 0),
    F(akt_error, where, 4),
    F(akt_error, what, 516),
    S(akt_rng, 32),
    F(akt_rng, s, 0),
    S(akt_bn_params, 40),
    F(akt_bn_params, gamma, 0),
    F(akt_bn_params, beta, 8),
    F(akt_bn_params, running_mean, 16),
    F(akt_bn_params, running_var, 24),
    F(akt_bn_params, eps, 32),
    F(akt_bn_params, momentum, 36),
    E(akt_plugin_kind, 4),
    E(akt_ptype, 4),
    E(akt_logit_loss, 4),
    E(akt_shortcut, 4),
    E(akt_kl_reduction, 4),
};

static void test_layout(void **state)
{
    (void)state;
    size_t n = sizeof layout / sizeof layout[0];
    if (getenv("AKT_ABI_PRINT"))
        for (size_t i = 0; i < n; i++)
            printf("# %s = %zu\n", layout[i].what, layout[i].now);
    if (sizeof(void *) != 8 || sizeof(long) != 8) {
        printf("# not an LP64 target: the recorded layout does not apply\n");
        skip();
    }
    if (AKT_PLUGIN_ABI != RECORDED_ABI)
        fail_msg("akt/plugin.h says AKT_PLUGIN_ABI %u, but this layout was recorded for ABI %u: "
                 "record the new layout (AKT_ABI_PRINT=1) and RECORDED_ABI",
                 (unsigned)AKT_PLUGIN_ABI, RECORDED_ABI);
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        if (layout[i].now != layout[i].recorded) {
            printf("# %s is %zu, recorded %zu for ABI %u\n", layout[i].what, layout[i].now,
                   layout[i].recorded, RECORDED_ABI);
            bad++;
        }
    if (bad)
        fail_msg("%d layout entries changed without an ABI bump: plugins built for ABI %u would "
                 "misread them. Bump AKT_PLUGIN_ABI in akt/plugin.h and record the layout anew",
                 bad, RECORDED_ABI);
    printf("# %zu sizes and offsets match ABI %u\n", n, RECORDED_ABI);
}

/* The size fields the host fills are what it was compiled with. */
static void test_size_fields(void **state)
{
    (void)state;
    struct akt_resnet m;
    akt_resnet_init(&m, 20, 10, AKT_SHORTCUT_PAD);
    assert_int_equal(m.size, sizeof m);
    struct akt_tape t;
    akt_tape_init(&t, 1 << 20);
    t.recording = 0;
    struct akt_tensor *x = akt_tensor_newv(&t, 0, 4, 1, 3, 32, 32);
    struct akt_resnet_out out;
    akt_resnet_forward(&m, &t, x, NULL, &out);
    assert_int_equal(out.size, sizeof out);
    akt_tape_free(&t);
    akt_resnet_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_size_fields),
    };
    return cmocka_run_group_tests_name("unit_abi", tests, NULL, NULL);
}
