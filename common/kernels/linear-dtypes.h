/*
 * One instruction set's kernels for the three weight dtypes (f32, bf16, f16): the including file
 * sets the target ISA with #pragma GCC target and defines ISA (the name prefix), MR and NP (see
 * linear-tile.h); this file undefines them again.
 */
#define JOIN_(a, b) a##b
#define JOIN(a, b) JOIN_(a, b)

#define SUFFIX JOIN(ISA, _f32)
#define WT float
#define LOAD LOAD_F32
#include "linear-tile.h"
#undef SUFFIX
#undef WT
#undef LOAD

#define SUFFIX JOIN(ISA, _bf16)
#define WT unsigned short
#define LOAD LOAD_BF16
#include "linear-tile.h"
#undef SUFFIX
#undef WT
#undef LOAD

#define SUFFIX JOIN(ISA, _f16)
#define WT _Float16
#define LOAD LOAD_F16
#include "linear-tile.h"
#undef SUFFIX
#undef WT
#undef LOAD

#undef ISA
#undef MR
#undef NP
