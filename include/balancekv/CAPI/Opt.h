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

/* Runs `pipeline` (e.g. "builtin.module(balancekv-raise-attention)") on the
 * module in `ir`. Returns 0 and sets *out to the printed result, or returns
 * nonzero and sets *out to the diagnostics (each "loc: error: message").
 * *out is malloc'ed: release it with balancekv_free. `generic` nonzero
 * prints the generic op form. */
int balancekv_opt(const char *ir, const char *pipeline, int generic,
                  char **out);

void balancekv_free(char *p);

#ifdef __cplusplus
}
#endif

#endif /* BALANCEKV_CAPI_OPT_H */
