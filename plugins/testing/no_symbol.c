/* Test-only plugin: a valid shared object whose entry point is misspelt, so
 * it lacks akt_plugin_get. */
#include "akt/plugin.h"

AKT_PLUGIN_EXPORT const struct akt_plugin *akt_plugin_gets(uint32_t index)
{
    (void)index;
    return NULL;
}
