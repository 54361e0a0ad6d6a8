/* Progress of a training run, shared by akt train and akt run: on a
 * terminal one line rewritten every iteration with the rate and an ETA;
 * one line per epoch always (with the ETA, for logs). Epochs are shown as
 * stored: "epoch 2 (3/8)" is the 0-based epoch 2, the third of eight. */
#include <stdio.h>

#include "akt/akt.h"
#include "akt/run.h"
#include "cli.h"

void akt_cli_progress_init(struct akt_cli_progress *p, int tty, int quiet, const char *label)
{
    *p = (struct akt_cli_progress){.tty = tty, .quiet = quiet, .label = label, .first = -1};
}

static const char *eta_text(double s, char *buf, size_t n)
{
    if (!(s >= 0) || s > 1e8)
        snprintf(buf, n, "?");
    else if (s >= 3600)
        snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else if (s >= 60)
        snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else
        snprintf(buf, n, "%ds", (int)s);
    return buf;
}

/* Seconds left after global iteration g (0-based) of epochs x iters, from
 * the rate since the first iteration this process ran; < 0: unknown yet. */
static double eta_after(struct akt_cli_progress *p, long g, long total)
{
    double now = akt_time_ms();
    if (p->first < 0) {
        p->first = g;
        p->t0 = now;
        return -1;
    }
    long done = g - p->first;
    double el = (now - p->t0) / 1e3;
    if (done <= 0 || el <= 0)
        return -1;
    p->rate = done / el;
    return (total - g - 1) / p->rate;
}

static const char *prefix(const struct akt_cli_progress *p)
{
    return p->label ? p->label : "";
}

void akt_cli_progress_iter(struct akt_cli_progress *p, int epoch, int epochs, int iter,
                           int iters, double lg, double lq)
{
    long g = (long)epoch * iters + iter;
    double eta = eta_after(p, g, (long)epochs * iters);
    if (!p->tty || p->quiet)
        return;
    char t[32];
    fprintf(stderr, "\r\033[K%s%sepoch %d (%d/%d)  iter %d/%d  loss_g %.4f  loss_q %.4f  %.2f it/s  "
            "ETA %s", prefix(p), p->label ? " " : "", epoch, epoch + 1, epochs, iter + 1, iters,
            lg, lq, p->rate, eta_text(eta, t, sizeof t));
    p->shown = 1;
}

void akt_cli_progress_epoch(struct akt_cli_progress *p, const struct akt_epoch_report *r,
                            int iters)
{
    double eta = eta_after(p, (long)(r->epoch + 1) * iters - 1, (long)r->epochs * iters);
    if (p->quiet)
        return;
    if (p->shown)
        fprintf(stderr, "\r\033[K");
    p->shown = 0;
    char t[32];
    fprintf(stderr, "%s%sepoch %d (%d/%d)  top1 %.2f  top5 %.2f  loss_g %.4f  loss_q %.4f  |g| %.3g  "
            "%.1fs  ETA %s\n", prefix(p), p->label ? " " : "", r->epoch, r->epoch + 1, r->epochs,
            r->top1, r->top5, r->loss_g, r->loss_q, r->grad_norm, r->seconds,
            r->epoch + 1 == r->epochs ? "0s" : eta_text(eta, t, sizeof t));
}

void akt_cli_progress_note(struct akt_cli_progress *p, const char *msg)
{
    if (p->shown)
        fprintf(stderr, "\r\033[K");
    p->shown = 0;
    fprintf(stderr, "akt: note: %s\n", msg); /* even with --quiet: it concerns the results */
}
