/* Test-only plugin: calls a function nothing defines, so dlopen with
 * RTLD_NOW fails and the loader must pass dlerror's text on. */
#include "akt/plugin.h"

void akt_test_no_such_function(void);

AKT_PLUGIN_EXPORT const struct akt_plugin *akt_plugin_get(uint32_t index)
{
    akt_test_no_such_function();
    (void)index;
    return NULL;
}
