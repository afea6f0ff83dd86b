/* fsdiff train: trains the FS-Diff U-Net and clarity encoder (docs/training.md).
 *
 * RUN_DIR holds: checkpoint.safetensors (weights, EMA, Adam moments, configs, step; atomic),
 * model.safetensors (the EMA weights as a model file, at every checkpoint), best.safetensors (the EMA
 * model with the best validation PSNR so far), train.csv, val.csv, loss-curve.png, run.json (data
 * and teacher paths, so --resume needs only --out). Multi-process data parallelism with MPI when
 * built with it: `mpirun -np K fsdiff train ...` (batch = global batch, split over the ranks). */
#include "cli.h"
#include "fsdiff/fusion.h"
#include "fsdiff/json.h"
#include "fsdiff/trainer.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef FSD_HAVE_MPI
#include <mpi.h>
#endif

int cmd_teacher(int argc, char **argv);
/* train_curves.c */
fsd_status train_read_csv_cols(const char *path, int c0, int c1, double **xs, double **ys, int *n);
fsd_status train_draw_curves(const char *run);

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: fsdiff train --data DIR --out RUN_DIR [options]\n"
            "       fsdiff train --resume --out RUN_DIR [--steps N] [schedule options]\n\n"
            "Trains the FS-Diff network and its clarity encoder on every DIR/<set>/train split (e.g.\n"
            "ivf/train, med/train; validation on DIR/<set>/val). Targets are teacher fusions of the HR pairs,\n"
            "made once with `fsdiff teacher` into --teacher (cached). Writes RUN_DIR/checkpoint.safetensors\n"
            "(resumable), model.safetensors (EMA weights, usable with `fsdiff fuse --model`), best.safetensors,\n"
            "train.csv, val.csv, loss-curve.png. Ctrl-C saves a checkpoint and stops.\n\n"
            "model:\n"
            "  --preset NAME        network preset: cpu (default), paper, tiny\n"
            "  --config FILE        network config JSON (keys of docs/model.md; overrides --preset)\n"
            "  --init MODEL         start from a model's (or checkpoint's) weights, fresh optimiser, step 0\n"
            "data:\n"
            "  --data DIR           data root: DIR/<set>/{train,val}/<modality>/NAME.png\n"
            "  --teacher DIR        teacher targets (default RUN_DIR/teacher, made if missing)\n"
            "  --teacher-method M   method for a new teacher and the residual base (default gff; auto:\n"
            "                       gradient for scans on a black background, laplacian otherwise)\n"
            "  --batch B            global batch (default 4)\n"
            "  --crops LIST         HR crop sides, one drawn per batch (default 64,96,128)\n"
            "  --scales LIST        SR factors, drawn per sample and modality (default 2,4,8)\n"
            "  --crop-degrade       degrade each crop on its own (the first stages' way); default: degrade the\n"
            "                       whole frame and cut the crop, residual base of the whole frame (as fuse does)\n"
            "  --blur P,MAX         extra Gaussian blur with probability P, sigma ~ U(0, MAX) (default off)\n"
            "  --noise P,MAX        extra noise on the LR image, sigma ~ U(0, MAX) on 0..255 (default off)\n"
            "  --no-augment         no flips / rot90\n"
            "  --data-seed N        seed of the data stream (default: --seed)\n"
            "optimisation:\n"
            "  --steps N            total steps (default 100000; may be raised on --resume)\n"
            "  --lr X, --lr-min X   peak and final learning rate (default 2e-4, 2e-6; cosine decay)\n"
            "  --warmup N           linear warm-up steps (default 500)\n"
            "  --clip X             global gradient-norm clip, 0 = off (default 1)\n"
            "  --ema X              EMA decay (default 0.999)\n"
            "  --weight-decay X     AdamW decay (default 0: Adam)\n"
            "  --adam-eps X         Adam epsilon (default 1e-8)\n"
            "  --loss l1|l2         loss on the prediction (default l1, the authors')\n"
            "  --t-per-batch        one noise level per batch (the authors') instead of per sample\n"
            "  --context mean|clarity  token roles during training (default clarity)\n"
            "  --seed N             init, noise and dropout seed (default 0)\n"
            "diffusion:\n"
            "  --schedule NAME      linear (default), quad, cosine, warmup10, warmup50, const\n"
            "  --T N, --beta-start X, --beta-end X   (default 2000, 1e-6, 1e-2)\n"
            "  --sample-steps N     recommended sampler steps stored in the model (default 50)\n"
            "  --target image|residual  generate the fused image (default, the paper's) or S x (fused -\n"
            "                       'upsample then fuse' with the teacher method), added back at inference\n"
            "  --residual-scale S   S for --target residual (default 4)\n"
            "  --prediction eps|v   what the network outputs: the noise (default, the paper's) or\n"
            "                       v = sqrt(a) eps - sqrt(1-a) x0, whose 1-step sample is the mean estimate\n"
            "schedule:\n"
            "  --ckpt-every N       checkpoint + model every N steps (default 500)\n"
            "  --log-every N        train.csv row (means over N steps) (default 10)\n"
            "  --val-every N        validation every N steps, 0 = off (default 1000)\n"
            "  --val-pairs N, --val-steps K, --val-crop S, --val-scale A,B   (default 6, 20, 128, 4,4)\n"
            "  --max-steps-now N    stop after N steps of this invocation (checkpoint saved)\n"
            "  --threads N, --quiet, --verbose\n");
}

/* ---------------------------------------------------------------- small helpers */
static volatile sig_atomic_t g_stop = 0;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static int parse_list(const char *opt, const char *s, int *out, int *n, int max, long lo, long hi) {
    char buf[256];
    if (!s) return cli_error("%s needs a value", opt), -1;
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        long v;
        if (*n == max) return cli_error("%s: at most %d values", opt, max), -1;
        if (cli_parse_int(opt, tok, lo, hi, &v)) return -1;
        out[(*n)++] = (int)v;
    }
    if (!*n) return cli_error("%s: empty list", opt), -1;
    return 0;
}

static int parse_pair_d(const char *opt, const char *s, double *p, double *max) {
    char a[64], b[64];
    const char *c = s ? strchr(s, ',') : NULL;
    if (!c || (size_t)(c - s) >= sizeof a || strlen(c + 1) >= sizeof b) return cli_error("%s: expected P,MAX", opt), -1;
    memcpy(a, s, (size_t)(c - s)), a[c - s] = 0;
    snprintf(b, sizeof b, "%s", c + 1);
    if (cli_parse_double(opt, a, 0, 1, p) || cli_parse_double(opt, b, 0, 1000, max)) return -1;
    return 0;
}

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Split folders DIR/<set>/<split> for every set that has one, sorted by set name. */
static int find_splits(const char *root, const char *split, char ***out) {
    DIR *d = opendir(root);
    *out = NULL;
    if (!d) return -1;
    char **v = NULL;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s/%s", root, e->d_name, split);
        if (!is_dir(p)) continue;
        char **nv = realloc(v, (size_t)(n + 1) * sizeof *v);
        if (!nv) break;
        v = nv;
        v[n++] = strdup(p);
    }
    closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
            char *t = v[j];
            v[j] = v[j - 1], v[j - 1] = t;
        }
    *out = v;
    return n;
}

static void free_list(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* Keeps the header and the rows whose first field (a step) is <= step: rows logged after the
 * checkpoint we resume from are dropped, so the log matches the resumed run. */
static fsd_status truncate_csv(const char *path, int64_t step) {
    if (!file_exists(path)) return FSD_OK;
    unsigned char *data;
    size_t n;
    fsd_status s = fsd_read_file(path, &data, &n);
    if (s) return s;
    char *txt = (char *)data, *out = fsd_alloc(n + 1);
    size_t o = 0;
    if (!out) {
        fsd_free(data);
        return FSD_ERR_NOMEM;
    }
    size_t i = 0;
    int line = 0;
    while (i < n) {
        size_t e = i;
        while (e < n && txt[e] != '\n') e++;
        int keep = line == 0;
        if (!keep && e < n) { /* complete rows only: a torn last line is dropped */
            char *end;
            long long st = strtoll(txt + i, &end, 10);
            keep = end != txt + i && st <= step;
        }
        if (keep) {
            memcpy(out + o, txt + i, e - i);
            o += e - i;
            out[o++] = '\n';
        }
        i = e + 1, line++;
    }
    s = fsd_write_file_atomic(path, out, o);
    fsd_free(out), fsd_free(data);
    return s;
}

/* A kill during an atomic write leaves its temp file (NAME.tmpXXXXXX, fsd_atomic_open) in the run
 * folder: a checkpoint-sized one per crash. The next run removes those of the files it owns. */
static void remove_stale_temps(const char *run) {
    static const char *own[] = {"checkpoint.safetensors", "model.safetensors", "best.safetensors", "run.json",
                                "train.csv", "val.csv", "loss-curve.png"};
    DIR *d = opendir(run);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        for (size_t k = 0; k < sizeof own / sizeof *own; k++) {
            size_t L = strlen(own[k]);
            if (strncmp(e->d_name, own[k], L) || strncmp(e->d_name + L, ".tmp", 4) || strlen(e->d_name + L + 4) != 6)
                continue;
            char p[4400];
            snprintf(p, sizeof p, "%s/%s", run, e->d_name);
            if (!unlink(p)) fsd_log(FSD_LOG_INFO, "train: removed %s (left by an interrupted write)", p);
        }
    }
    closedir(d);
}

/* --init from a residual or v model continues as one unless --target/--residual-scale (resp.
 * --prediction) say otherwise: its weights only make sense with what they were trained for. */
static fsd_status inherit_target(const char *path, int target_set, int pred_set, int method_set,
                                 fsd_diffusion_config *d) {
    fsd_safetensors st;
    fsd_status s = fsd_st_open(&st, path);
    if (s) return s;
    const char *dj = fsd_st_meta_get(&st, FSD_DIFFUSION_META_KEY);
    fsd_diffusion_config f;
    if (dj && !(s = fsd_diffusion_config_from_json(&f, dj, strlen(dj), path))) {
        if (!target_set && f.residual) {
            d->residual = 1, d->residual_scale = f.residual_scale;
            if (!method_set) d->residual_method = f.residual_method; /* --teacher-method changes the base */
            fsd_log(FSD_LOG_INFO, "train: --init model has a residual target (%s, scale %g): continuing with it%s",
                    fsd_fuse_method_name(f.residual_method), f.residual_scale,
                    method_set && f.residual_method != d->residual_method ? ", base from --teacher-method" : "");
        }
        if (!pred_set && f.prediction != FSD_PRED_EPS) {
            d->prediction = f.prediction;
            fsd_log(FSD_LOG_INFO, "train: --init model predicts %s: continuing with it", fsd_prediction_name(f.prediction));
        }
    }
    fsd_st_close(&st);
    return s;
}

/* ---------------------------------------------------------------- validation baseline */
typedef struct base_ctx {
    fsd_fuse_method method;
    fsd_fuse_params prm;
} base_ctx;

static fsd_status baseline_fuse(void *vc, fsd_fuse_method auto_pick, const float *a, int ca, const float *b, int cb,
                                int w, int h, float *out) {
    base_ctx *bc = vc;
    size_t hw = (size_t)w * h;
    fsd_image ia = {w, h, ca, (float *)a}, ib = {w, h, cb, (float *)b}, f = {0};
    fsd_status s = fsd_fuse_images(bc->method == FSD_FUSE_AUTO ? auto_pick : bc->method, &bc->prm, &ia, &ib, &f);
    if (s) return s;
    for (int c = 0; c < 3; c++) memcpy(out + c * hw, f.data + (f.c == 3 ? c : 0) * hw, hw * sizeof(float));
    for (size_t i = 0; i < 3 * hw; i++) out[i] = out[i] < 0 ? 0 : out[i] > 255 ? 255 : out[i];
    fsd_image_free(&f);
    return FSD_OK;
}

/* ---------------------------------------------------------------- MPI */
#ifdef FSD_HAVE_MPI
static fsd_status mpi_sum(void *ctx, float *buf, size_t n) {
    (void)ctx;
    for (size_t o = 0; o < n;) { /* MPI counts are int */
        int c = n - o > (1u << 30) ? (1 << 30) : (int)(n - o);
        if (MPI_Allreduce(MPI_IN_PLACE, buf + o, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
            return fsd_fail(FSD_ERR_INTERNAL, "MPI_Allreduce failed");
        o += (size_t)c;
    }
    return FSD_OK;
}
static fsd_status mpi_sum_f64(void *ctx, double *buf, size_t n) {
    (void)ctx;
    if (MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
        return fsd_fail(FSD_ERR_INTERNAL, "MPI_Allreduce failed");
    return FSD_OK;
}
#endif

/* ---------------------------------------------------------------- run.json */
static int write_run_json(const char *run, const char *data, const char *teacher) {
    char p[4096];
    snprintf(p, sizeof p, "%s/run.json", run);
    fsd_atomic_file f;
    if (fsd_atomic_open(&f, p)) return -1;
    fputs("{\"data\":", f.fp);
    cli_json_string(f.fp, data);
    fputs(",\"teacher\":", f.fp);
    cli_json_string(f.fp, teacher);
    fputs("}\n", f.fp);
    return fsd_atomic_commit(&f) ? -1 : 0;
}

static int read_run_json(const char *run, char *data, size_t nd, char *teacher, size_t nt) {
    char p[4096];
    snprintf(p, sizeof p, "%s/run.json", run);
    unsigned char *buf;
    size_t n;
    if (fsd_read_file(p, &buf, &n)) return -1;
    fsd_json j;
    int rc = -1;
    if (!fsd_json_parse((const char *)buf, n, p, &j)) {
        const fsd_json *d = fsd_json_get(&j, "data"), *t = fsd_json_get(&j, "teacher");
        if (d && t && d->type == FSD_JSON_STRING && t->type == FSD_JSON_STRING) {
            if (!*data) snprintf(data, nd, "%s", d->str);
            if (!*teacher) snprintf(teacher, nt, "%s", t->str);
            rc = 0;
        }
        fsd_json_free(&j);
    }
    fsd_free(buf);
    return rc;
}

/* ---------------------------------------------------------------- main */
typedef struct opts {
    const char *out, *config, *init, *preset, *teacher_method;
    char data[4096], teacher[4096];
    int resume;
    long long max_now;
} opts;

static int run_training(opts *o, fsd_train_config *cfg, const fsd_train_comm *comm);

int cmd_train(int argc, char **argv) {
    opts o;
    memset(&o, 0, sizeof o);
    o.preset = "cpu", o.teacher_method = "gff", o.max_now = -1;
    /* first pass: options that decide where the config starts from */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout), 0;
        if (!strcmp(argv[i], "--resume")) o.resume = 1;
        if (i + 1 < argc) {
            if (!strcmp(argv[i], "--out") || !strcmp(argv[i], "-o")) o.out = argv[i + 1];
            if (!strcmp(argv[i], "--preset")) o.preset = argv[i + 1];
            if (!strcmp(argv[i], "--config")) o.config = argv[i + 1];
        }
    }
    if (!o.out) return cli_error("train: --out RUN_DIR is required (see fsdiff train --help)");
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", o.out);
    fsd_train_config cfg;
    if (o.resume) {
        if (!file_exists(ckpt)) return cli_error("train --resume: %s does not exist", ckpt);
        if (fsd_train_config_from_checkpoint(&cfg, ckpt)) return cli_lib_error();
    } else {
        if (file_exists(ckpt))
            return cli_error("train: %s already holds a checkpoint; use --resume to continue it or another --out", o.out);
        if (fsd_train_config_default(&cfg, o.preset)) return cli_lib_error();
        if (o.config) {
            if (fsd_net_config_load(&cfg.net, o.config)) return cli_lib_error();
            fsd_clarity_config_default(&cfg.clarity, cfg.net.context_dim);
            int T = fsd_clarity_tokens(cfg.clarity.pool * cfg.clarity.pool);
            if (cfg.net.context_tokens != T)
                return cli_error("train: %s: context_tokens must be %d (the clarity encoder's 2 x (1 + pool^2) tokens)",
                                 o.config, T);
        }
        cfg.data.align = 1 << (cfg.net.n_mults - 1);
        if (cfg.data.align < 8) cfg.data.align = 8;
    }
    int data_seed_set = 0, target_set = 0, pred_set = 0, method_set = 0;
    for (int i = 1; i < argc; i++) {
        int c = cli_common_option(argc, argv, &i);
        if (c < 0) return 1;
        if (c > 0) continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        double d;
#define NEEDV                                                                                                          \
    do {                                                                                                               \
        if (!v) return cli_error("%s needs a value", a);                                                               \
        i++;                                                                                                           \
    } while (0)
        if (!strcmp(a, "--resume")) continue;
        else if (!strcmp(a, "--out") || !strcmp(a, "-o") || !strcmp(a, "--preset") || !strcmp(a, "--config")) NEEDV;
        else if (!strcmp(a, "--init")) { NEEDV; o.init = v; }
        else if (!strcmp(a, "--data")) { NEEDV; snprintf(o.data, sizeof o.data, "%s", v); }
        else if (!strcmp(a, "--teacher")) { NEEDV; snprintf(o.teacher, sizeof o.teacher, "%s", v); }
        else if (!strcmp(a, "--teacher-method")) { NEEDV; o.teacher_method = v; method_set = 1; }
        else if (!strcmp(a, "--batch")) { NEEDV; if (cli_parse_int(a, v, 1, 4096, &n)) return 1; cfg.data.batch = (int)n; }
        else if (!strcmp(a, "--crops")) { NEEDV; if (parse_list(a, v, cfg.data.crop_sizes, &cfg.data.n_crop_sizes, FSD_TD_MAX_SIZES, 8, 4096)) return 1; }
        else if (!strcmp(a, "--scales")) { NEEDV; if (parse_list(a, v, cfg.data.scales, &cfg.data.n_scales, FSD_TD_MAX_SCALES, 1, 16)) return 1; }
        else if (!strcmp(a, "--crop-degrade")) cfg.data.whole_frame = 0;
        else if (!strcmp(a, "--blur")) { NEEDV; if (parse_pair_d(a, v, &cfg.data.blur_p, &cfg.data.blur_max)) return 1; }
        else if (!strcmp(a, "--noise")) { NEEDV; if (parse_pair_d(a, v, &cfg.data.noise_p, &cfg.data.noise_max)) return 1; }
        else if (!strcmp(a, "--no-augment")) cfg.data.augment = 0;
        else if (!strcmp(a, "--data-seed")) { NEEDV; if (cli_parse_int(a, v, 0, 2147483647L, &n)) return 1; cfg.data.seed = (uint64_t)n; data_seed_set = 1; }
        else if (!strcmp(a, "--seed")) { NEEDV; if (cli_parse_int(a, v, 0, 2147483647L, &n)) return 1; cfg.seed = (uint64_t)n; }
        else if (!strcmp(a, "--steps")) { NEEDV; if (cli_parse_int(a, v, 1, 1000000000L, &n)) return 1; cfg.steps = n; }
        else if (!strcmp(a, "--lr")) { NEEDV; if (cli_parse_double(a, v, 1e-9, 1, &d)) return 1; cfg.lr = d; }
        else if (!strcmp(a, "--lr-min")) { NEEDV; if (cli_parse_double(a, v, 0, 1, &d)) return 1; cfg.lr_min = d; }
        else if (!strcmp(a, "--warmup")) { NEEDV; if (cli_parse_int(a, v, 0, 1000000000L, &n)) return 1; cfg.warmup = n; }
        else if (!strcmp(a, "--clip")) { NEEDV; if (cli_parse_double(a, v, 0, 1e6, &d)) return 1; cfg.clip = d; }
        else if (!strcmp(a, "--ema")) { NEEDV; if (cli_parse_double(a, v, 0, 0.999999, &d)) return 1; cfg.ema = d; }
        else if (!strcmp(a, "--adam-eps")) { NEEDV; if (cli_parse_double(a, v, 1e-12, 1, &d)) return 1; cfg.adam_eps = d; }
        else if (!strcmp(a, "--weight-decay")) { NEEDV; if (cli_parse_double(a, v, 0, 0.5, &d)) return 1; cfg.weight_decay = d; }
        else if (!strcmp(a, "--loss")) { NEEDV; if (fsd_loss_kind_parse(v, &cfg.loss)) return cli_lib_error(); }
        else if (!strcmp(a, "--t-per-batch")) cfg.per_sample_t = 0;
        else if (!strcmp(a, "--context")) { NEEDV; if (fsd_context_mode_parse(v, &cfg.context)) return cli_lib_error(); cfg.diff.context = cfg.context; }
        else if (!strcmp(a, "--schedule")) { NEEDV; if (fsd_beta_kind_parse(v, &cfg.diff.schedule)) return cli_lib_error(); }
        else if (!strcmp(a, "--T")) { NEEDV; if (cli_parse_int(a, v, 1, 1000000, &n)) return 1; cfg.diff.T = (int)n; }
        else if (!strcmp(a, "--beta-start")) { NEEDV; if (cli_parse_double(a, v, 1e-12, 0.999, &d)) return 1; cfg.diff.beta_start = d; }
        else if (!strcmp(a, "--beta-end")) { NEEDV; if (cli_parse_double(a, v, 1e-12, 0.999, &d)) return 1; cfg.diff.beta_end = d; }
        else if (!strcmp(a, "--target")) {
            NEEDV;
            target_set = 1;
            if (!strcmp(v, "image")) cfg.diff.residual = 0;
            else if (!strcmp(v, "residual")) cfg.diff.residual = 1;
            else return cli_error("--target: expected image or residual, got '%s'", v);
        } else if (!strcmp(a, "--residual-scale")) { NEEDV; target_set = 1; if (cli_parse_double(a, v, 0.01, 100, &d)) return 1; cfg.diff.residual_scale = d; }
        else if (!strcmp(a, "--prediction")) { NEEDV; pred_set = 1; if (fsd_prediction_parse(v, &cfg.diff.prediction)) return cli_lib_error(); }
        else if (!strcmp(a, "--sample-steps")) { NEEDV; if (cli_parse_int(a, v, 1, 1000000, &n)) return 1; cfg.diff.steps = (int)n; }
        else if (!strcmp(a, "--ckpt-every")) { NEEDV; if (cli_parse_int(a, v, 1, 1000000000L, &n)) return 1; cfg.ckpt_every = n; }
        else if (!strcmp(a, "--log-every")) { NEEDV; if (cli_parse_int(a, v, 1, 1000000000L, &n)) return 1; cfg.log_every = n; }
        else if (!strcmp(a, "--val-every")) { NEEDV; if (cli_parse_int(a, v, 0, 1000000000L, &n)) return 1; cfg.val_every = n; }
        else if (!strcmp(a, "--val-pairs")) { NEEDV; if (cli_parse_int(a, v, 1, 10000, &n)) return 1; cfg.val_pairs = (int)n; }
        else if (!strcmp(a, "--val-steps")) { NEEDV; if (cli_parse_int(a, v, 1, 1000000, &n)) return 1; cfg.val_steps = (int)n; }
        else if (!strcmp(a, "--val-crop")) { NEEDV; if (cli_parse_int(a, v, 0, 4096, &n)) return 1; cfg.val_crop = (int)n; }
        else if (!strcmp(a, "--val-scale")) {
            NEEDV;
            int sc[2], ns;
            if (parse_list(a, v, sc, &ns, 2, 1, 16)) return 1;
            if (ns != 2) return cli_error("--val-scale: expected A,B");
            cfg.val_scale_a = sc[0], cfg.val_scale_b = sc[1];
        } else if (!strcmp(a, "--max-steps-now")) { NEEDV; if (cli_parse_int(a, v, 1, 1000000000L, &n)) return 1; o.max_now = n; }
        else return cli_error("train: unknown option '%s' (see fsdiff train --help)", a);
#undef NEEDV
    }
    if (!o.resume && !data_seed_set) cfg.data.seed = cfg.seed;
    if (fsd_fuse_method_parse(o.teacher_method, &cfg.diff.residual_method)) return cli_lib_error();
    if (o.resume && o.init) return cli_error("train: --init starts a new run; it cannot be used with --resume");
    if (o.init && !(target_set && pred_set) && inherit_target(o.init, target_set, pred_set, method_set, &cfg.diff))
        return cli_lib_error();
    if (o.resume) read_run_json(o.out, o.data, sizeof o.data, o.teacher, sizeof o.teacher);
    if (!*o.data) return cli_error("train: --data DIR is required (a data root with <set>/train folders)");
    if (!*o.teacher) snprintf(o.teacher, sizeof o.teacher, "%s/teacher", o.out);
    if (fsd_train_config_validate(&cfg)) return cli_lib_error();

    fsd_train_comm comm = {0, 1, NULL, NULL, NULL};
    int rc;
#ifdef FSD_HAVE_MPI
    int use_mpi = getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
    if (use_mpi) {
        MPI_Init(NULL, NULL);
        MPI_Comm_rank(MPI_COMM_WORLD, &comm.rank);
        MPI_Comm_size(MPI_COMM_WORLD, &comm.size);
        comm.allreduce_sum = mpi_sum, comm.allreduce_sum_f64 = mpi_sum_f64;
        if (comm.rank > 0) fsd_progress_set_quiet(1), fsd_set_log_level(FSD_LOG_ERROR);
    }
    rc = run_training(&o, &cfg, &comm);
    if (use_mpi) {
        if (rc) MPI_Abort(MPI_COMM_WORLD, rc);
        MPI_Finalize();
    }
#else
    rc = run_training(&o, &cfg, &comm);
#endif
    return rc;
}

static int ensure_teacher(const opts *o, int rank) {
    if (rank > 0) return 0;
    /* `fsdiff teacher` is cached: existing targets newer than their pair are kept */
    char *targv[] = {"teacher", "--method", (char *)o->teacher_method, "--data", (char *)o->data,
                     "--out", (char *)o->teacher, "--quiet", NULL};
    fsd_log(FSD_LOG_INFO, "teacher targets: %s (method %s; cached)", o->teacher, o->teacher_method);
    return cmd_teacher(fsd_get_log_level() < FSD_LOG_INFO ? 8 : 7, targv);
}

static int teacher_method_of(const char *dir, base_ctx *bc) {
    char p[4200];
    snprintf(p, sizeof p, "%s/.fsdiff-teacher", dir);
    unsigned char *buf;
    size_t n;
    char name[32] = "gff";
    if (!fsd_read_file(p, &buf, &n)) {
        const char *m = NULL;
        for (size_t q = 0; q + 7 <= n && !m; q++)
            if (!memcmp((char *)buf + q, "method=", 7)) m = (char *)buf + q;
        if (m) {
            size_t k = 0;
            m += 7;
            while (k + 1 < sizeof name && m + k < (char *)buf + n && m[k] > ' ') name[k] = m[k], k++;
            name[k] = 0;
        }
        fsd_free(buf);
    }
    fsd_fuse_params_default(&bc->prm);
    return fsd_fuse_method_parse(name, &bc->method) ? -1 : 0;
}

static int run_training(opts *o, fsd_train_config *cfg, const fsd_train_comm *comm) {
    const int root = comm->rank == 0;
    if (!is_dir(o->data)) return cli_error("train: --data %s is not a directory", o->data);
    char **tr = NULL, **va = NULL;
    int ntr = find_splits(o->data, "train", &tr), nva = find_splits(o->data, "val", &va);
    if (ntr <= 0) {
        free_list(tr, ntr > 0 ? ntr : 0), free_list(va, nva > 0 ? nva : 0);
        return cli_error("train: no <set>/train folders under %s", o->data);
    }
    int rc = 1;
    fsd_traindata *td = NULL, *vd = NULL;
    fsd_trainer *t = NULL;
    FILE *csv = NULL, *vcsv = NULL;
    char ckpt[4096], model[4096], best[4096], tcsv[4096], vcsvp[4096];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", o->out);
    snprintf(model, sizeof model, "%s/model.safetensors", o->out);
    snprintf(best, sizeof best, "%s/best.safetensors", o->out);
    snprintf(tcsv, sizeof tcsv, "%s/train.csv", o->out);
    snprintf(vcsvp, sizeof vcsvp, "%s/val.csv", o->out);
    double best_psnr = -1e30;
    /* weights first (a bad --init or checkpoint fails before the slow data work) */
    if (fsd_trainer_create(&t, cfg, o->init, comm)) { rc = cli_lib_error(); goto done; }
    if (o->resume && fsd_trainer_load_checkpoint(t, ckpt)) { rc = cli_lib_error(); goto done; }
    /* the run folder only once the inputs were accepted: a refused run leaves nothing behind */
    if (root && mkdir(o->out, 0777) != 0 && errno != EEXIST) {
        rc = cli_error("train: cannot create %s: %s", o->out, strerror(errno));
        goto done;
    }
    if (root) remove_stale_temps(o->out);
    if (root && (rc = ensure_teacher(o, comm->rank)) != 0) goto done;
#ifdef FSD_HAVE_MPI
    if (comm->size > 1) MPI_Barrier(MPI_COMM_WORLD);
#endif
    rc = 1;
    const fsd_traindata_config dc = fsd_train_config_data(cfg);
    if (fsd_traindata_open((const char *const *)tr, ntr, o->teacher, &dc, &td)) { rc = cli_lib_error(); goto done; }
    if (cfg->val_every > 0 && nva > 0 && root) {
        fsd_traindata_config vc = dc;
        vc.crop_sizes[0] = cfg->val_crop > 0 ? cfg->val_crop : cfg->data.crop_sizes[0];
        vc.n_crop_sizes = 1;
        if (fsd_traindata_open((const char *const *)va, nva, o->teacher, &vc, &vd)) { rc = cli_lib_error(); goto done; }
    }
    if (o->resume) {
        if (root) {
            if (truncate_csv(tcsv, fsd_trainer_step(t)) || truncate_csv(vcsvp, fsd_trainer_step(t))) { rc = cli_lib_error(); goto done; }
            double *xs, *ys;
            int n;
            if (!train_read_csv_cols(vcsvp, 0, 2, &xs, &ys, &n))
                for (int i = 0; i < n; i++) best_psnr = ys[i] > best_psnr ? ys[i] : best_psnr;
            free(xs), free(ys);
        }
    } else if (root) {
        remove(tcsv), remove(vcsvp);
    }
    if (root && write_run_json(o->out, o->data, o->teacher)) { rc = cli_error("train: cannot write %s/run.json", o->out); goto done; }
    if (root) {
        int fresh = !file_exists(tcsv);
        csv = fopen(tcsv, "a");
        if (csv && fresh) fprintf(csv, "step,loss,loss_eps,loss_deg,grad_norm,lr,crop,steps_per_s,elapsed_s\n");
        fresh = !file_exists(vcsvp);
        vcsv = fopen(vcsvp, "a");
        if (vcsv && fresh) fprintf(vcsv, "step,pairs,psnr_model,psnr_base,ssim_model,ssim_base,seconds\n");
        if (!csv || !vcsv) { rc = cli_error("train: cannot write the logs in %s: %s", o->out, strerror(errno)); goto done; }
        fflush(csv), fflush(vcsv);
    }
    base_ctx bc;
    if (teacher_method_of(o->teacher, &bc)) { rc = cli_lib_error(); goto done; }
    if (cfg->diff.residual && bc.method != cfg->diff.residual_method)
        fsd_log(FSD_LOG_WARN, "train: the residual base uses %s but the teacher targets were made with %s",
                fsd_fuse_method_name(cfg->diff.residual_method), fsd_fuse_method_name(bc.method));

    const int64_t start = fsd_trainer_step(t);
    int64_t end = cfg->steps;
    if (o->max_now > 0 && start + o->max_now < end) end = start + o->max_now;
    if (start >= end) { /* e.g. --resume of a finished run: nothing to train, refresh the picture */
        if (root) {
            if (train_draw_curves(o->out)) fsd_log(FSD_LOG_WARN, "train: loss curve not drawn: %s", fsd_error_message());
            fsd_log(FSD_LOG_INFO, "train: already at step %lld of %lld; raise --steps to continue", (long long)start,
                    (long long)cfg->steps);
        }
        rc = 0;
        goto done;
    }
    if (root) {
        const fsd_params *pn = fsd_net_params(fsd_trainer_net(t)), *pc = fsd_clarity_params(fsd_trainer_clarity(t));
        fsd_log(FSD_LOG_INFO, "train: %s; %.2f M + %.2f M (clarity) parameters; %d training pairs from %d sets%s; batch %d%s%s",
                o->resume ? "resuming" : "new run", pn->total / 1e6, pc->total / 1e6, fsd_traindata_n_pairs(td), ntr,
                vd ? "" : " (no validation)", cfg->data.batch, comm->size > 1 ? " over MPI ranks" : "",
                o->init ? ", weights from --init" : "");
        fsd_log(FSD_LOG_INFO, "train: steps %lld -> %lld of %lld; checkpoints in %s", (long long)start, (long long)end,
                (long long)cfg->steps, o->out);
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    fsd_progress bar;
    fsd_progress_begin(&bar, "train", end - start);
    double t0 = fsd_time_seconds(), tw = t0, acc[4] = {0, 0, 0, 0};
    int acc_n = 0;
    rc = 0;
    for (int64_t k = start; k < end; k++) {
        fsd_train_stats st;
        if (fsd_trainer_train_step(t, td, &st)) { rc = cli_lib_error(); break; }
        acc[0] += st.loss, acc[1] += st.loss_eps, acc[2] += st.loss_deg, acc[3] += st.grad_norm, acc_n++;
        char extra[96];
        snprintf(extra, sizeof extra, "loss %.4f lr %.1e", st.loss, st.lr);
        fsd_progress_update(&bar, k + 1 - start, extra);
        int last = k + 1 == end || g_stop;
        if (root && (st.step % cfg->log_every == 0 || last)) {
            double now = fsd_time_seconds();
            fprintf(csv, "%lld,%.6g,%.6g,%.6g,%.6g,%.6g,%d,%.4g,%.1f\n", (long long)st.step, acc[0] / acc_n, acc[1] / acc_n,
                    acc[2] / acc_n, acc[3] / acc_n, st.lr, st.crop, acc_n / (now - tw), now - t0);
            fflush(csv);
            memset(acc, 0, sizeof acc), acc_n = 0, tw = now;
        }
        if (root && vd && cfg->val_every > 0 && st.step % cfg->val_every == 0) {
            fsd_val_result vr;
            if (fsd_trainer_validate(t, vd, baseline_fuse, &bc, &vr)) { rc = cli_lib_error(); break; }
            fprintf(vcsv, "%lld,%d,%.4f,%.4f,%.5f,%.5f,%.1f\n", (long long)st.step, vr.n, vr.psnr_model, vr.psnr_base,
                    vr.ssim_model, vr.ssim_base, vr.seconds);
            fflush(vcsv);
            fsd_log(FSD_LOG_INFO, "val @%lld: PSNR %.2f dB (bicubic+teacher %.2f), SSIM %.4f (%.4f), %.1f s",
                    (long long)st.step, vr.psnr_model, vr.psnr_base, vr.ssim_model, vr.ssim_base, vr.seconds);
            if (vr.psnr_model > best_psnr) {
                best_psnr = vr.psnr_model;
                char prov[256];
                snprintf(prov, sizeof prov, "{\"step\":%lld,\"val_psnr\":%.4f}", (long long)st.step, vr.psnr_model);
                if (fsd_trainer_save_model(t, best, FSD_F32, prov)) { rc = cli_lib_error(); break; }
            }
        }
        if (root && (st.step % cfg->ckpt_every == 0 || last)) {
            char prov[256];
            snprintf(prov, sizeof prov, "{\"step\":%lld}", (long long)st.step);
            if (fsd_trainer_save_checkpoint(t, ckpt) || fsd_trainer_save_model(t, model, FSD_F32, prov)) {
                rc = cli_lib_error();
                break;
            }
            if (train_draw_curves(o->out)) fsd_log(FSD_LOG_WARN, "train: loss curve not drawn: %s", fsd_error_message());
        }
        if (g_stop) break;
    }
    fsd_progress_end(&bar);
    if (!rc && root) {
        if (g_stop) {
            fsd_log(FSD_LOG_WARN, "train: interrupted at step %lld; checkpoint saved; continue with --resume --out %s",
                    (long long)fsd_trainer_step(t), o->out);
            rc = 130;
        } else {
            fsd_log(FSD_LOG_INFO, "train: done at step %lld; model: %s", (long long)fsd_trainer_step(t), model);
        }
    }
done:
    if (csv) fclose(csv);
    if (vcsv) fclose(vcsv);
    fsd_trainer_free(t);
    fsd_traindata_close(td);
    fsd_traindata_close(vd);
    free_list(tr, ntr > 0 ? ntr : 0), free_list(va, nva > 0 ? nva : 0);
    return rc;
}
