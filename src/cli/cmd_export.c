/* fsdiff export: rewrites a model (or the weights of a training checkpoint) as a model file for
 * shipping: another dtype (fp16 halves the size), the recommended sampler / steps / context stored in
 * its "fsdiff.diffusion" metadata, optional provenance text. The weights are only converted. */
#include "cli.h"
#include "fsdiff/model.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: fsdiff export --model IN.safetensors -o OUT.safetensors [options]\n\n"
            "Writes IN's network and clarity encoder as a model file (a checkpoint's optimiser state is dropped;\n"
            "from a checkpoint the raw weights are taken - use the run's model.safetensors for the EMA weights).\n"
            "  --dtype f32|f16|bf16   storage type (default f16)\n"
            "  --sampler NAME         recommended sampler stored in the model (ddpm, ddim, dpmpp2m)\n"
            "  --steps N              recommended steps\n"
            "  --spacing NAME         linspace, trailing, leading, logsnr\n"
            "  --eta E                ddim eta\n"
            "  --residual-shrink L    residual models: soft threshold of the added detail, grey levels (0..64)\n"
            "  --context mean|clarity recommended context mode\n"
            "  --note TEXT            free text stored as metadata \"fsdiff.note\"\n");
}

int cmd_export(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *note = NULL;
    const char *sampler = NULL, *spacing = NULL, *context = NULL;
    long steps = 0;
    double eta = -1, shrink = -1;
    fsd_dtype dtype = FSD_F16;
    for (int i = 1; i < argc; i++) {
        int c = cli_common_option(argc, argv, &i);
        if (c < 0) return 1;
        if (c) continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout), 0;
        if (!v) return cli_error("export: %s needs a value (or is unknown)", a);
        i++;
        if (!strcmp(a, "--model")) in = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--note")) note = v;
        else if (!strcmp(a, "--sampler")) sampler = v;
        else if (!strcmp(a, "--spacing")) spacing = v;
        else if (!strcmp(a, "--context")) context = v;
        else if (!strcmp(a, "--steps")) { if (cli_parse_int(a, v, 1, 1000000, &steps)) return 1; }
        else if (!strcmp(a, "--eta")) { if (cli_parse_double(a, v, 0, 10, &eta)) return 1; }
        else if (!strcmp(a, "--residual-shrink")) { if (cli_parse_double(a, v, 0, 64, &shrink)) return 1; }
        else if (!strcmp(a, "--dtype")) {
            if (!strcmp(v, "f32")) dtype = FSD_F32;
            else if (!strcmp(v, "f16")) dtype = FSD_F16;
            else if (!strcmp(v, "bf16")) dtype = FSD_BF16;
            else return cli_error("export: --dtype must be f32, f16 or bf16, not '%s'", v);
        } else return cli_error("export: unknown option '%s' (see fsdiff export --help)", a);
    }
    if (!in || !out) return cli_error("export: --model IN and -o OUT are required");
    if (!strcmp(in, out)) return cli_error("export: the output must differ from the input");
    fsd_model m;
    if (fsd_model_open(&m, in)) return cli_lib_error();
    fsd_diffusion_config d = m.diff;
    fsd_status s = FSD_OK;
    if (sampler) s = fsd_sampler_parse(sampler, &d.sampler);
    if (!s && spacing) s = fsd_spacing_parse(spacing, &d.spacing);
    if (!s && context) s = fsd_context_mode_parse(context, &d.context);
    if (steps) d.steps = (int)steps;
    if (eta >= 0) d.eta = eta;
    if (shrink >= 0 && !d.residual) s = fsd_fail(FSD_ERR_INVALID, "export: --residual-shrink needs a residual-target model");
    if (shrink >= 0) d.residual_shrink = shrink;
    if (!s) s = fsd_diffusion_config_validate(&d);
    const char *keys[2], *vals[2];
    int nk = 0;
    if (m.train_info) keys[nk] = "fsdiff.train", vals[nk++] = m.train_info;
    if (note) keys[nk] = "fsdiff.note", vals[nk++] = note;
    if (!s) s = fsd_model_save(m.net, m.clarity, &d, out, dtype, nk, keys, vals);
    fsd_model_close(&m);
    if (s) return cli_lib_error();
    fsd_log(FSD_LOG_INFO, "export: wrote %s (%s; %s, %d steps)", out,
            dtype == FSD_F16 ? "f16" : dtype == FSD_BF16 ? "bf16" : "f32", fsd_sampler_name(d.sampler), d.steps);
    return 0;
}
