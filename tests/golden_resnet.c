/* placeholder: being written */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
static void placeholder(void **s) { (void)s; skip(); }
int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(placeholder) };
    return cmocka_run_group_tests_name("golden_resnet", tests, NULL, NULL);
}
