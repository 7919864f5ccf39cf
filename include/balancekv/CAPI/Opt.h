/*===- Opt.h - balancekv's passes in-process, from C ----------------------===*
 *
 * The C entry that Python (python/balancekv) and other hosts use to run
 * balancekv's and MLIR's passes on MLIR text in their own process: parse,
 * run a textual pass pipeline (as `balancekv-opt --pass-pipeline=...`),
 * print. Every MLIR dialect, extension and pass is registered, plus
 * balancekv's (balancekv/InitAll.h).
 *===----------------------------------------------------------------------===*/
#ifndef BALANCEKV_CAPI_OPT_H
#define BALANCEKV_CAPI_OPT_H

#ifdef __cplusplus
extern "C" {
#endif

/* What balancekv_opt prints, or'ed: the generic op form; locations (so
 * that names carried as NameLocs, e.g. Triton's kernel argument names,
 * survive). 0 prints the custom form without locations. */
enum { BALANCEKV_OPT_GENERIC = 1, BALANCEKV_OPT_DEBUGINFO = 2 };

/* Runs `pipeline` (e.g. "builtin.module(balancekv-raise-attention)") on the
 * module in `ir`. Returns 0 and sets *out to the printed result, or returns
 * nonzero and sets *out to the diagnostics (each "loc: error: message").
 * *out is malloc'ed: release it with balancekv_free. `print_flags`:
 * BALANCEKV_OPT_* or'ed (1, the old `generic` flag, still means generic). */
int balancekv_opt(const char *ir, const char *pipeline, int print_flags,
                  char **out);

void balancekv_free(char *p);

#ifdef __cplusplus
}
#endif

#endif /* BALANCEKV_CAPI_OPT_H */
