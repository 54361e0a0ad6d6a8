/* Umbrella header. */
#ifndef AKT_AKT_H
#define AKT_AKT_H
#include "akt/base.h"
#include "akt/tensor.h"
#include "akt/nn.h"
#include "akt/data.h"
#include "akt/eval.h"
#endif
