/* Network config: presets, validation, JSON in and out. */
#include "fsdiff/json.h"
#include "fsdiff/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *fsd_mamba_mode_name(fsd_mamba_mode m) {
    return m == FSD_MAMBA_FORWARD ? "forward" : m == FSD_MAMBA_BIDIR ? "bidirectional" : "none";
}

static int mamba_from_name(const char *s, fsd_mamba_mode *m) {
    if (!strcmp(s, "none")) *m = FSD_MAMBA_NONE;
    else if (!strcmp(s, "forward")) *m = FSD_MAMBA_FORWARD;
    else if (!strcmp(s, "bidirectional")) *m = FSD_MAMBA_BIDIR;
    else return 0;
    return 1;
}

fsd_status fsd_net_config_preset(fsd_net_config *c, const char *name) {
    memset(c, 0, sizeof *c);
    c->in_channels = 9;
    c->out_channels = 3;
    c->d_head = 32;
    c->norm_groups = 32;
    c->mamba = FSD_MAMBA_BIDIR;
    c->mamba_bottleneck = FSD_MAMBA_NONE;
    c->mamba_divide_out = 1;
    c->d_state = 16;
    c->d_conv = 4;
    c->expand = 2;
    if (!strcmp(name, "paper")) {
        /* TFS-Diff / SR3 hyper-parameters (the FS-Diff repo has no config), reference §1.2 */
        c->base_channels = 64;
        c->n_mults = 5;
        int m[5] = {1, 2, 4, 8, 8};
        memcpy(c->mults, m, sizeof m);
        c->res_blocks = 2;
        c->n_attn = 1;
        c->attn_res[0] = 16;
        c->image_size = 128;
        c->dropout = 0.2f;
        c->context_dim = 512;
        c->context_tokens = 1;
    } else if (!strcmp(name, "cpu")) {
        /* CPU-sized default: same topology, a quarter of the width work */
        c->base_channels = 32;
        c->n_mults = 4;
        int m[4] = {1, 2, 4, 4};
        memcpy(c->mults, m, sizeof m);
        c->res_blocks = 1;
        c->n_attn = 1;
        c->attn_res[0] = 16;
        c->image_size = 128;
        c->dropout = 0.1f;
        /* the clarity encoder's 2 x (1 + 2^2) tokens; 128 wide is plenty for 10 tokens and keeps
         * the cross-attention projections small */
        c->context_dim = 128;
        c->context_tokens = 10;
    } else if (!strcmp(name, "tiny")) {
        c->base_channels = 32;
        c->n_mults = 2;
        c->mults[0] = 1;
        c->mults[1] = 2;
        c->res_blocks = 1;
        c->n_attn = 1;
        c->attn_res[0] = 16;
        c->image_size = 32;
        c->dropout = 0.0f;
        c->context_dim = 64;
        c->context_tokens = 2;
    } else {
        return fsd_fail(FSD_ERR_INVALID, "unknown network preset '%s' (paper, cpu, tiny)", name);
    }
    return FSD_OK;
}

fsd_status fsd_net_config_validate(const fsd_net_config *c) {
#define BAD(...) return fsd_fail(FSD_ERR_INVALID, "network config: " __VA_ARGS__)
    if (c->in_channels < 1 || c->in_channels > 64) BAD("in_channels %d out of range 1..64", c->in_channels);
    if (c->out_channels < 1 || c->out_channels > 64) BAD("out_channels %d out of range 1..64", c->out_channels);
    if (c->norm_groups < 1 || c->norm_groups > 256) BAD("norm_groups %d out of range 1..256", c->norm_groups);
    if (c->base_channels < 1 || c->base_channels > 4096 || c->base_channels % c->norm_groups)
        BAD("base_channels %d must be a positive multiple of norm_groups %d (GroupNorm)", c->base_channels,
            c->norm_groups);
    if (c->base_channels % 2) BAD("base_channels %d must be even (sinusoidal noise embedding)", c->base_channels);
    if (c->n_mults < 1 || c->n_mults > FSD_NET_MAX_LEVELS)
        BAD("channel_mults needs 1..%d entries, got %d", FSD_NET_MAX_LEVELS, c->n_mults);
    for (int i = 0; i < c->n_mults; i++)
        if (c->mults[i] < 1 || c->mults[i] > 64) BAD("channel_mults[%d] = %d out of range 1..64", i, c->mults[i]);
    if (c->res_blocks < 1 || c->res_blocks > 16) BAD("res_blocks %d out of range 1..16", c->res_blocks);
    if (c->n_attn < 0 || c->n_attn > FSD_NET_MAX_LEVELS) BAD("attn_res has %d entries (max %d)", c->n_attn, FSD_NET_MAX_LEVELS);
    for (int i = 0; i < c->n_attn; i++)
        if (c->attn_res[i] < 1) BAD("attn_res[%d] = %d must be positive", i, c->attn_res[i]);
    int div = 1 << (c->n_mults - 1);
    if (c->image_size < div || c->image_size > 8192 || c->image_size % div)
        BAD("image_size %d must be a multiple of %d (2^(levels-1)) and at most 8192", c->image_size, div);
    if (c->d_head < 1 || c->d_head > 1024) BAD("d_head %d out of range 1..1024", c->d_head);
    if (c->base_channels < c->d_head) BAD("base_channels %d smaller than d_head %d (no attention head)", c->base_channels, c->d_head);
    if (c->context_dim < 1 || c->context_dim > 65536) BAD("context_dim %d out of range 1..65536", c->context_dim);
    if (c->context_tokens < 1 || c->context_tokens > 4096) BAD("context_tokens %d out of range 1..4096", c->context_tokens);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f)) BAD("dropout %g must be in [0, 1)", (double)c->dropout);
    if ((unsigned)c->mamba > 2u || (unsigned)c->mamba_bottleneck > 2u) BAD("mamba mode out of range");
    if (c->d_state < 1 || c->d_state > 256) BAD("d_state %d out of range 1..256", c->d_state);
    if (c->d_conv < 1 || c->d_conv > 64) BAD("d_conv %d out of range 1..64", c->d_conv);
    if (c->expand < 1 || c->expand > 16) BAD("expand %d out of range 1..16", c->expand);
#undef BAD
    return FSD_OK;
}

static fsd_status int_field(const fsd_json *v, const char *key, const char *label, int *out) {
    if (v->type != FSD_JSON_NUMBER || !v->is_int || v->i64 < -1000000000LL || v->i64 > 1000000000LL)
        return fsd_fail(FSD_ERR_INVALID, "%s: config key '%s' must be an integer", label, key);
    *out = (int)v->i64;
    return FSD_OK;
}

static fsd_status int_list(const fsd_json *v, const char *key, const char *label, int *out, int *n) {
    if (v->type != FSD_JSON_ARRAY || v->n > FSD_NET_MAX_LEVELS)
        return fsd_fail(FSD_ERR_INVALID, "%s: config key '%s' must be a list of at most %d integers", label, key,
                        FSD_NET_MAX_LEVELS);
    memset(out, 0, FSD_NET_MAX_LEVELS * sizeof(int));
    for (int i = 0; i < v->n; i++) {
        fsd_status s = int_field(&v->items[i], key, label, &out[i]);
        if (s) return s;
    }
    *n = v->n;
    return FSD_OK;
}

fsd_status fsd_net_config_from_json(fsd_net_config *c, const char *text, size_t len, const char *label) {
    fsd_json root;
    fsd_status s = fsd_json_parse(text, len, label, &root);
    if (s) return s;
    if (root.type != FSD_JSON_OBJECT) {
        fsd_json_free(&root);
        return fsd_fail(FSD_ERR_INVALID, "%s: network config must be a JSON object", label);
    }
    const fsd_json *pv = fsd_json_get(&root, "preset");
    if (pv && pv->type != FSD_JSON_STRING) s = fsd_fail(FSD_ERR_INVALID, "%s: config key 'preset' must be a string", label);
    if (!s) s = fsd_net_config_preset(c, pv ? pv->str : "paper");
    for (int i = 0; !s && i < root.n; i++) {
        const char *k = root.keys[i];
        const fsd_json *v = &root.items[i];
        if (!strcmp(k, "preset")) continue;
        else if (!strcmp(k, "in_channels")) s = int_field(v, k, label, &c->in_channels);
        else if (!strcmp(k, "out_channels")) s = int_field(v, k, label, &c->out_channels);
        else if (!strcmp(k, "base_channels")) s = int_field(v, k, label, &c->base_channels);
        else if (!strcmp(k, "channel_mults")) s = int_list(v, k, label, c->mults, &c->n_mults);
        else if (!strcmp(k, "res_blocks")) s = int_field(v, k, label, &c->res_blocks);
        else if (!strcmp(k, "attn_res")) s = int_list(v, k, label, c->attn_res, &c->n_attn);
        else if (!strcmp(k, "image_size")) s = int_field(v, k, label, &c->image_size);
        else if (!strcmp(k, "d_head")) s = int_field(v, k, label, &c->d_head);
        else if (!strcmp(k, "norm_groups")) s = int_field(v, k, label, &c->norm_groups);
        else if (!strcmp(k, "context_dim")) s = int_field(v, k, label, &c->context_dim);
        else if (!strcmp(k, "context_tokens")) s = int_field(v, k, label, &c->context_tokens);
        else if (!strcmp(k, "d_state")) s = int_field(v, k, label, &c->d_state);
        else if (!strcmp(k, "d_conv")) s = int_field(v, k, label, &c->d_conv);
        else if (!strcmp(k, "expand")) s = int_field(v, k, label, &c->expand);
        else if (!strcmp(k, "dropout")) {
            if (v->type != FSD_JSON_NUMBER) s = fsd_fail(FSD_ERR_INVALID, "%s: config key 'dropout' must be a number", label);
            else c->dropout = (float)v->num;
        } else if (!strcmp(k, "mamba_divide_out")) {
            if (v->type != FSD_JSON_BOOL) s = fsd_fail(FSD_ERR_INVALID, "%s: config key '%s' must be true or false", label, k);
            else c->mamba_divide_out = v->boolean;
        } else if (!strcmp(k, "mamba") || !strcmp(k, "mamba_bottleneck")) {
            fsd_mamba_mode *m = !strcmp(k, "mamba") ? &c->mamba : &c->mamba_bottleneck;
            if (v->type != FSD_JSON_STRING || !mamba_from_name(v->str, m))
                s = fsd_fail(FSD_ERR_INVALID, "%s: config key '%s' must be \"none\", \"forward\" or \"bidirectional\"", label, k);
        } else {
            s = fsd_fail(FSD_ERR_INVALID, "%s: unknown network config key '%s'", label, k);
        }
    }
    fsd_json_free(&root);
    if (s) return s;
    s = fsd_net_config_validate(c);
    if (s) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", fsd_error_message()); /* fsd_fail writes the same buffer */
        return fsd_fail(s, "%s: %s", label, msg);
    }
    return FSD_OK;
}

fsd_status fsd_net_config_load(fsd_net_config *c, const char *path) {
    unsigned char *data;
    size_t n;
    fsd_status s = fsd_read_file(path, &data, &n);
    if (s) return s;
    s = fsd_net_config_from_json(c, (const char *)data, n, path);
    fsd_free(data);
    return s;
}

static void put_list(char *buf, size_t cap, const int *v, int n) {
    size_t o = strlen(buf);
    o += snprintf(buf + o, cap - o, "[");
    for (int i = 0; i < n; i++) o += snprintf(buf + o, cap - o, "%s%d", i ? ", " : "", v[i]);
    snprintf(buf + o, cap - o, "]");
}

char *fsd_net_config_to_json(const fsd_net_config *c) {
    size_t cap = 1024;
    char *b = fsd_alloc(cap);
    if (!b) return NULL;
    size_t o = 0;
    o += snprintf(b + o, cap - o, "{\"in_channels\": %d, \"out_channels\": %d, \"base_channels\": %d, \"channel_mults\": ",
                  c->in_channels, c->out_channels, c->base_channels);
    put_list(b, cap, c->mults, c->n_mults);
    o = strlen(b);
    o += snprintf(b + o, cap - o, ", \"res_blocks\": %d, \"attn_res\": ", c->res_blocks);
    put_list(b, cap, c->attn_res, c->n_attn);
    o = strlen(b);
    snprintf(b + o, cap - o,
             ", \"image_size\": %d, \"d_head\": %d, \"norm_groups\": %d, \"context_dim\": %d, \"context_tokens\": %d, "
             "\"dropout\": %.9g, \"mamba\": \"%s\", \"mamba_bottleneck\": \"%s\", \"mamba_divide_out\": %s, "
             "\"d_state\": %d, \"d_conv\": %d, \"expand\": %d}",
             c->image_size, c->d_head, c->norm_groups, c->context_dim, c->context_tokens, (double)c->dropout,
             fsd_mamba_mode_name(c->mamba), fsd_mamba_mode_name(c->mamba_bottleneck),
             c->mamba_divide_out ? "true" : "false", c->d_state, c->d_conv, c->expand);
    return b;
}
