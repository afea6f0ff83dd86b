/* fsdiff ops: every op family has *_forward and *_backward side by side (src/ops/<family>.c).
 *
 * Conventions shared by all ops (llm.c style):
 *  - plain float pointers and explicit int shapes; images NCHW, token sequences (B, L, C) unless
 *    the op says otherwise; the shape of every argument is written in its comment.
 *  - backward functions ACCUMULATE (+=) into every gradient buffer (inputs and parameters); the
 *    caller zeroes them. Any gradient pointer may be NULL: that gradient is skipped.
 *  - scratch memory comes from an fsd_arena passed in (`ws`); the op resets the arena to where it
 *    found it before returning, so no op mallocs in the hot loop.
 *  - threads: ops parallelise internally with OpenMP (and the BLAS); results do not depend on the
 *    thread count except for the order of float summation inside sgemm.
 */
#ifndef FSDIFF_OPS_H
#define FSDIFF_OPS_H

#include "fsdiff/ops_conv.h"      /* conv2d, nearest upsample, channel bias, concat/split */
#include "fsdiff/ops_norm.h"      /* group norm, layer norm */
#include "fsdiff/ops_linear.h"    /* linear, activations, GEGLU, noise-level embedding, losses, Adam */
#include "fsdiff/ops_attention.h" /* multi-head attention (self and cross) */
#include "fsdiff/ops_mamba.h"     /* depthwise causal conv1d, selective scan */

#endif
