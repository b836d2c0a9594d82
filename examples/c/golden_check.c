/*
 * golden_check.c -- read one case of an fp8ref golden set and check it, in plain C99.
 *
 * What a kernel author's test does with a golden set (docs/golden-format.md):
 *   1. find the case in manifest.json,
 *   2. check the tensor file's size and SHA-256 against the manifest,
 *   3. parse the safetensors header (8-byte little-endian length, JSON, raw little-endian data),
 *   4. run the implementation under test on the inputs and compare the outputs bit for bit.
 * The "implementation under test" here is a small float32 -> E4M3/E5M2 round-to-nearest-even cast, so the
 * case must be a `quantize` case of format E4M3 or E5M2 with rounding "nearest_even" and a float32 input,
 * e.g. casts/E4M3/quantize-f32-nearest_even-sat (the default).
 * Block-scaled cases (suites mx and nvfp4: ops mx_quantize, nvfp4_quantize) are read as a GEMM kernel reads
 * them: the element codes (E2M1 packed two per byte, element 2i in the low nibble), the block scales (E8M0 or
 * E4M3) in the plain and in the 128x4 swizzled layout, and the per-tensor scale; the program checks that the
 * swizzled scales sit at cuBLAS's offsets and that codes x scale x global scale give `dequantized` bit for bit.
 *
 * Build and run:  cc -std=c99 -O2 -Wall -o golden_check golden_check.c && ./golden_check golden [CASE_ID]
 * Exit status: 0 every code matches, 1 mismatch or corrupt file, 2 usage / unsupported case.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h> /* NAN, INFINITY */

struct jval;
static const uint8_t *tensor(const struct jval *hdr, const char *name, const char *dtype, size_t itemsize,
                             const uint8_t *data, size_t data_len, size_t *count);

/* ---------------------------------------------------------------- a minimal JSON parser ------------ */
typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;
typedef struct jval {
    jtype t;
    double num;
    int boolean;
    char *str;           /* J_STR: decoded (ASCII escapes only); J_OBJ member: key */
    struct jval *kids;   /* J_ARR / J_OBJ: array of n children */
    char **keys;         /* J_OBJ: member names */
    size_t n;
} jval;

typedef struct { const char *p, *end; int err; } jparser;

static void ws(jparser *s) { while (s->p < s->end && strchr(" \t\r\n", *s->p)) s->p++; }

static int parse_value(jparser *s, jval *v, int depth);

static char *parse_string(jparser *s) {
    if (s->p >= s->end || *s->p != '"') { s->err = 1; return NULL; }
    s->p++;
    size_t cap = 16, n = 0;
    char *out = malloc(cap);
    while (s->p < s->end && *s->p != '"') {
        char c = *s->p++;
        if (c == '\\') {
            if (s->p >= s->end) break;
            c = *s->p++;
            switch (c) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u': /* fp8ref writes ASCII only; keep \u escapes below 0x80, replace the rest by '?' */
                if (s->end - s->p < 4) { s->err = 1; free(out); return NULL; }
                { unsigned u = 0; sscanf(s->p, "%4x", &u); c = u < 0x80 ? (char)u : '?'; s->p += 4; }
                break;
            default: break; /* \" \\ \/ */
            }
        }
        if (n + 2 > cap) out = realloc(out, cap *= 2);
        out[n++] = c;
    }
    if (s->p >= s->end) { s->err = 1; free(out); return NULL; }
    s->p++;
    out[n] = 0;
    return out;
}

static int parse_value(jparser *s, jval *v, int depth) {
    memset(v, 0, sizeof *v);
    if (depth > 64) return s->err = 1, 0;
    ws(s);
    if (s->p >= s->end) return s->err = 1, 0;
    char c = *s->p;
    if (c == '{' || c == '[') {
        int obj = c == '{';
        v->t = obj ? J_OBJ : J_ARR;
        s->p++;
        size_t cap = 0;
        ws(s);
        if (s->p < s->end && *s->p == (obj ? '}' : ']')) { s->p++; return 1; }
        for (;;) {
            if (v->n == cap) {
                cap = cap ? 2 * cap : 8;
                v->kids = realloc(v->kids, cap * sizeof *v->kids);
                if (obj) v->keys = realloc(v->keys, cap * sizeof *v->keys);
            }
            if (obj) {
                ws(s);
                v->keys[v->n] = parse_string(s);
                if (s->err) return 0;
                ws(s);
                if (s->p >= s->end || *s->p++ != ':') return s->err = 1, 0;
            }
            if (!parse_value(s, &v->kids[v->n++], depth + 1)) return 0;
            ws(s);
            if (s->p < s->end && *s->p == ',') { s->p++; continue; }
            if (s->p < s->end && *s->p == (obj ? '}' : ']')) { s->p++; return 1; }
            return s->err = 1, 0;
        }
    }
    if (c == '"') { v->t = J_STR; v->str = parse_string(s); return !s->err; }
    if (!strncmp(s->p, "true", 4) || !strncmp(s->p, "false", 5)) {
        v->t = J_BOOL; v->boolean = *s->p == 't'; s->p += v->boolean ? 4 : 5; return 1;
    }
    if (!strncmp(s->p, "null", 4)) { v->t = J_NULL; s->p += 4; return 1; }
    char *e;
    v->t = J_NUM;
    v->num = strtod(s->p, &e);
    if (e == s->p) return s->err = 1, 0;
    s->p = e;
    return 1;
}

static const jval *jget(const jval *o, const char *key) {
    if (!o || o->t != J_OBJ) return NULL;
    for (size_t i = 0; i < o->n; i++)
        if (!strcmp(o->keys[i], key)) return &o->kids[i];
    return NULL;
}

static const char *jstr(const jval *o, const char *key) {
    const jval *v = jget(o, key);
    return v && v->t == J_STR ? v->str : NULL;
}

/* ---------------------------------------------------------------- SHA-256 (FIPS 180-4) -------------- */
static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t h[8], const uint8_t *b) {
    uint32_t w[64], a[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 | (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(a, h, sizeof a);
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = a[7] + (ROR(a[4], 6) ^ ROR(a[4], 11) ^ ROR(a[4], 25)) + ((a[4] & a[5]) ^ (~a[4] & a[6]))
                      + K256[i] + w[i];
        uint32_t t2 = (ROR(a[0], 2) ^ ROR(a[0], 13) ^ ROR(a[0], 22)) + ((a[0] & a[1]) ^ (a[0] & a[2]) ^ (a[1] & a[2]));
        memmove(a + 1, a, 7 * sizeof *a);
        a[4] += t1;
        a[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++) h[i] += a[i];
}

static void sha256_hex(const uint8_t *data, size_t len, char out[65]) {
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    uint8_t tail[128] = {0};
    size_t full = len / 64 * 64, rest = len - full;
    for (size_t i = 0; i < full; i += 64) sha256_block(h, data + i);
    memcpy(tail, data + full, rest);
    tail[rest] = 0x80;
    size_t tl = rest < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) tail[tl - 1 - i] = (uint8_t)(bits >> (8 * i));
    sha256_block(h, tail);
    if (tl == 128) sha256_block(h, tail + 64);
    for (int i = 0; i < 8; i++) sprintf(out + 8 * i, "%08x", h[i]);
}

/* ---------------------------------------------------------------- the implementation under test ---- */
typedef struct { const char *name; int ebits, mbits, bias, ieee; uint8_t max_code; } fp8fmt;
static const fp8fmt FORMATS[] = {{"E4M3", 4, 3, 7, 0, 0x7E}, {"E5M2", 5, 2, 15, 1, 0x7B}};

/* float32 -> FP8 code, round to nearest even, NaN -> 0x7F|sign, overflow -> max (saturate) or Inf/NaN. */
static uint8_t cast_rne(uint32_t bits, const fp8fmt *f, int saturate) {
    uint8_t sign = (uint8_t)((bits >> 24) & 0x80);
    uint32_t exp = (bits >> 23) & 0xFF, frac = bits & 0x7FFFFF;
    uint8_t nan = 0x7F, inf = f->ieee ? (uint8_t)(0x1F << 2) : nan;
    if (exp == 0xFF) {
        if (frac) return nan | sign;
        return (saturate ? f->max_code : inf) | sign;
    }
    uint64_t mant = exp ? (frac | 0x800000u) : frac; /* |x| = mant * 2^(e2) */
    int e2 = (exp ? (int)exp : 1) - 150;
    if (mant == 0) return sign;
    int top = 63;
    while (!(mant >> top)) top--;
    int e = e2 + top, emin = 1 - f->bias;          /* floor(log2|x|) and the smallest normal exponent */
    int q = (e > emin ? e : emin) - f->mbits;      /* exponent of one ulp of the target at |x| */
    int shift = q - e2;                            /* > 0 for every float32 input: fewer target bits */
    uint64_t k;
    if (shift > 60) {
        k = 0;                                     /* far below half an ulp: rounds to zero */
    } else {
        k = mant >> shift;
        uint64_t rem = mant & ((1ull << shift) - 1), half = 1ull << (shift - 1);
        if (rem > half || (rem == half && (k & 1))) k++;
    }
    if (k == 0) return sign;
    /* code = ((q + mbits + bias - 1) << mbits) + k: covers subnormals and the carry into the next binade */
    int64_t code = ((int64_t)(q + f->mbits + f->bias - 1) << f->mbits) + (int64_t)k;
    if (code > f->max_code) return (saturate ? f->max_code : inf) | sign;
    return (uint8_t)code | sign;
}

/* ---------------------------------------------------------------- block-scaled tensors (mx, nvfp4) -- */
/* 2^e as a double, exactly (|e| < 300), without libm */
static double pow2i(int e) {
    double r = 1.0, b = e < 0 ? 0.5 : 2.0;
    for (int i = e < 0 ? -e : e; i > 0; i--) r *= b;
    return r;
}

/* The value of a code of E2M1, E4M3, E5M2 (sign included) or E8M0 (2^(c-127), 0xFF NaN), as a double. */
static double decode(uint8_t c, const char *fmt) {
    if (!strcmp(fmt, "E8M0")) return c == 0xFF ? NAN : pow2i((int)c - 127);
    double sign = (c & 0x80) || (!strcmp(fmt, "E2M1") && (c & 0x8)) ? -1.0 : 1.0;
    if (!strcmp(fmt, "E2M1")) {
        int e = (c >> 1) & 3, m = c & 1;
        return sign * (e ? (2 + m) * pow2i(e - 2) : 0.5 * m);
    }
    if (!strcmp(fmt, "E4M3")) {
        int e = (c >> 3) & 0xF, m = c & 7;
        if ((c & 0x7F) == 0x7F) return NAN;
        return sign * (e ? (8 + m) * pow2i(e - 10) : m * pow2i(-9));
    }
    int e = (c >> 2) & 0x1F, m = c & 3; /* E5M2 */
    if (e == 31) return m ? NAN : sign * INFINITY;
    return sign * (e ? (4 + m) * pow2i(e - 17) : m * pow2i(-16));
}

static int shape_of(const jval *hdr, const char *name, size_t dims[], size_t max) {
    const jval *sh = jget(jget(hdr, name), "shape");
    if (!sh || sh->t != J_ARR || sh->n > max) return -1;
    for (size_t i = 0; i < sh->n; i++) dims[i] = (size_t)sh->kids[i].num;
    return (int)sh->n;
}

static uint32_t f32_bits(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Check an mx_quantize / nvfp4_quantize case; returns the number of mismatches, or -1 for a bad file. */
static long check_block_scaled(const char *id, const char *op, const jval *params, const jval *hdr,
                               const uint8_t *data, size_t data_len) {
    int nv = !strcmp(op, "nvfp4_quantize");
    const char *efmt = nv ? "E2M1" : jstr(params, "format"), *sfmt = nv ? "E4M3" : "E8M0";
    const char *sdt = nv ? "F8_E4M3" : "U8";
    const jval *tile = jget(params, "tile"), *axis = jget(params, "axis");
    size_t br = 1, bc = nv ? 16 : 32, dq[2], sc[2], ncodes, nscale, nsw, ndq, ng = 0;
    if (!efmt || (nv && (!tile || tile->t != J_ARR || tile->n != 2)) || (!nv && (!axis || axis->t != J_NUM)))
        return -1;
    if (nv) { br = (size_t)tile->kids[0].num; bc = (size_t)tile->kids[1].num; }
    else if (axis->num == 0) { br = 32; bc = 1; }
    int packed = !strcmp(efmt, "E2M1"), along_rows = br > 1 && bc == 1;
    if (shape_of(hdr, "dequantized", dq, 2) != 2 || shape_of(hdr, "scale_codes", sc, 2) != 2) return -1;
    const char *cdt = packed ? "U8" : (!strcmp(efmt, "E4M3") ? "F8_E4M3" : "F8_E5M2");
    const uint8_t *codes = tensor(hdr, packed ? "codes_packed" : "codes", cdt, 1, data, data_len, &ncodes);
    const uint8_t *scale = tensor(hdr, "scale_codes", sdt, 1, data, data_len, &nscale);
    const uint8_t *sw = tensor(hdr, "scale_codes_swizzled", sdt, 1, data, data_len, &nsw);
    const uint8_t *deq = tensor(hdr, "dequantized", "F32", 4, data, data_len, &ndq);
    const uint8_t *gs = jget(hdr, "global_scale") ? tensor(hdr, "global_scale", "F32", 4, data, data_len, &ng) : NULL;
    size_t m = dq[0], n = dq[1];
    if (!codes || !scale || !sw || !deq || ndq != m * n || ncodes != (packed ? m * n / 2 : m * n) ||
        sc[0] != (m + br - 1) / br || sc[1] != (n + bc - 1) / bc || (jget(hdr, "global_scale") && ng != 1))
        return -1;
    long bad = 0;
    /* 1. the 128x4 layout: the GEMM's scale grid has one row per matrix row (per column for axis 0) */
    size_t gr = along_rows ? n : m, gc = along_rows ? sc[0] : sc[1];
    size_t pr = (gr + 127) / 128 * 128, pc = (gc + 3) / 4 * 4;
    if (nsw != pr * pc) return -1;
    for (size_t r = 0; r < pr; r++)
        for (size_t c = 0; c < pc; c++) {
            size_t off = ((r / 128) * (pc / 4) + c / 4) * 512 + (r % 32) * 16 + ((r % 128) / 32) * 4 + c % 4;
            uint8_t want = 0;
            if (r < gr && c < gc) want = along_rows ? scale[c * sc[1] + r] : scale[(r / br) * sc[1] + c];
            if (sw[off] != want && bad++ < 10) printf("MISMATCH %s: swizzled scale (%zu, %zu)\n", id, r, c);
        }
    /* 2. codes x block scale x global scale, in double, rounded once to float32 */
    double g = 1.0;
    if (gs) { uint32_t b = f32_bits(gs); float gf; memcpy(&gf, &b, 4); g = gf; }
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            uint8_t code;
            if (!packed) code = codes[i * n + j];
            else if (along_rows) code = (uint8_t)(codes[(i / 2) * n + j] >> (4 * (i & 1))) & 0xF;
            else code = (uint8_t)(codes[i * (n / 2) + j / 2] >> (4 * (j & 1))) & 0xF;
            double s = decode(scale[(i / br) * sc[1] + j / bc], sfmt);
            float v = (float)(decode(code, efmt) * (s * g));
            uint32_t got, want = f32_bits(deq + 4 * (i * n + j));
            memcpy(&got, &v, 4);
            float wf;
            memcpy(&wf, &want, 4);
            if (got != want && !(v != v && wf != wf) && bad++ < 10)
                printf("MISMATCH %s[%zu,%zu]: code 0x%x expected %a got %a\n", id, i, j, code, wf, v);
        }
    printf("%s: %zu values and %zu swizzled scales checked (%s elements, %s scales%s, sha256 ok)\n", id,
           m * n, nsw, efmt, sfmt, gs ? ", global scale" : "");
    return bad;
}

/* ---------------------------------------------------------------- main ------------------------------ */
static uint8_t *read_file(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    *len = fread(buf, 1, (size_t)n, fp);
    fclose(fp);
    return buf;
}

/* Locate tensor `name` in the parsed header; checks dtype and bounds. Returns the data pointer. */
static const uint8_t *tensor(const struct jval *hdr, const char *name, const char *dtype, size_t itemsize,
                             const uint8_t *data, size_t data_len, size_t *count) {
    const jval *t = jget(hdr, name), *shape = jget(t, "shape"), *offs = jget(t, "data_offsets");
    const char *dt = jstr(t, "dtype");
    if (!t || !shape || !offs || !dt || shape->t != J_ARR || offs->t != J_ARR || offs->n != 2) return NULL;
    if (strcmp(dt, dtype)) { fprintf(stderr, "tensor %s: dtype %s, expected %s\n", name, dt, dtype); return NULL; }
    size_t n = 1;
    for (size_t i = 0; i < shape->n; i++) n *= (size_t)shape->kids[i].num;
    size_t b = (size_t)offs->kids[0].num, e = (size_t)offs->kids[1].num;
    if (e < b || e > data_len || e - b != n * itemsize) { fprintf(stderr, "tensor %s: bad data_offsets\n", name); return NULL; }
    *count = n;
    return data + b;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s SET_DIR [CASE_ID]\n", argv[0]); return 2; }
    const char *dir = argv[1], *want = argc > 2 ? argv[2] : "casts/E4M3/quantize-f32-nearest_even-sat";
    char path[4096];
    size_t len;
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    uint8_t *mtext = read_file(path, &len);
    if (!mtext) { fprintf(stderr, "cannot read %s\n", path); return 1; }
    jparser s = {(const char *)mtext, (const char *)mtext + len, 0};
    jval man;
    if (!parse_value(&s, &man, 0)) { fprintf(stderr, "manifest.json: invalid JSON\n"); return 1; }
    const jval *ver = jget(&man, "schema_version");
    if (!jstr(&man, "schema") || strcmp(jstr(&man, "schema"), "fp8ref-golden") || !ver || ver->num != 1) {
        fprintf(stderr, "manifest.json: not an fp8ref-golden schema 1 set\n"); return 1;
    }
    const jval *cases = jget(&man, "cases"), *c = NULL;
    for (size_t i = 0; cases && i < cases->n; i++)
        if (jstr(&cases->kids[i], "id") && !strcmp(jstr(&cases->kids[i], "id"), want)) c = &cases->kids[i];
    if (!c) { fprintf(stderr, "case %s not in the manifest\n", want); return 2; }

    const jval *params = jget(c, "params");
    const char *op = jstr(c, "op"), *fmtname = jstr(params, "format"), *rounding = jstr(params, "rounding");
    const char *dtype = jstr(params, "dtype");
    const jval *sat = jget(params, "saturate");
    const fp8fmt *f = NULL;
    for (size_t i = 0; fmtname && i < sizeof FORMATS / sizeof *FORMATS; i++)
        if (!strcmp(FORMATS[i].name, fmtname)) f = &FORMATS[i];
    int block = op && (!strcmp(op, "mx_quantize") || !strcmp(op, "nvfp4_quantize"));
    if (!block && (!op || strcmp(op, "quantize") || !f || !rounding || strcmp(rounding, "nearest_even") ||
                   !dtype || strcmp(dtype, "float32") || !sat || sat->t != J_BOOL)) {
        fprintf(stderr, "case %s: this example checks only quantize (E4M3/E5M2, nearest_even, float32), "
                "mx_quantize and nvfp4_quantize cases\n", want);
        return 2;
    }

    /* 2. size and SHA-256 of the tensor file (paths are relative, '/'-separated, never '..') */
    const char *file = jstr(c, "file"), *sha = jstr(c, "sha256");
    if (!file || strstr(file, "..") || file[0] == '/') { fprintf(stderr, "bad file path\n"); return 1; }
    snprintf(path, sizeof path, "%s/%s", dir, file);
    uint8_t *buf = read_file(path, &len);
    if (!buf) { fprintf(stderr, "cannot read %s\n", path); return 1; }
    const jval *nbytes = jget(c, "bytes");
    if (!nbytes || (size_t)nbytes->num != len) { fprintf(stderr, "%s: size %zu differs from manifest\n", file, len); return 1; }
    char hex[65];
    sha256_hex(buf, len, hex);
    if (!sha || strcmp(hex, sha)) { fprintf(stderr, "%s: SHA-256 %s differs from manifest %s\n", file, hex, sha ? sha : "?"); return 1; }

    /* 3. safetensors: u64 LE header length, JSON header, data */
    if (len < 8) { fprintf(stderr, "%s: truncated\n", file); return 1; }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | buf[i];
    if (hlen > len - 8) { fprintf(stderr, "%s: header length past the end\n", file); return 1; }
    jparser hs = {(const char *)buf + 8, (const char *)buf + 8 + hlen, 0};
    jval hdr;
    if (!parse_value(&hs, &hdr, 0)) { fprintf(stderr, "%s: header is not JSON\n", file); return 1; }
    const uint8_t *data = buf + 8 + hlen;
    size_t data_len = len - 8 - (size_t)hlen, nx, nc;
    if (block) {
        long nbad = check_block_scaled(want, op, params, &hdr, data, data_len);
        if (nbad < 0) { fprintf(stderr, "%s: block-scaled tensors missing or inconsistent\n", file); return 1; }
        printf(nbad ? "FAIL\n" : "PASS\n");
        return nbad ? 1 : 0;
    }
    const char *code_dtype = !strcmp(f->name, "E4M3") ? "F8_E4M3" : "F8_E5M2";
    const uint8_t *x = tensor(&hdr, "x", "F32", 4, data, data_len, &nx);
    const uint8_t *codes = tensor(&hdr, "codes", code_dtype, 1, data, data_len, &nc);
    if (!x || !codes || nx != nc) { fprintf(stderr, "%s: tensors x / codes missing or inconsistent\n", file); return 1; }

    /* 4. run the cast and compare bit for bit */
    size_t bad = 0;
    for (size_t i = 0; i < nx; i++) {
        uint32_t bits = (uint32_t)x[4 * i] | (uint32_t)x[4 * i + 1] << 8 | (uint32_t)x[4 * i + 2] << 16 |
                        (uint32_t)x[4 * i + 3] << 24;
        uint8_t got = cast_rne(bits, f, sat->boolean);
        if (got != codes[i] && bad++ < 10) {
            float xv;
            memcpy(&xv, &bits, 4);
            printf("MISMATCH %s[%zu]: x=%a (0x%08x) expected 0x%02x got 0x%02x\n", want, i, xv, bits, codes[i], got);
        }
    }
    printf("%s: %zu of %zu codes match (%s, saturate=%s, sha256 ok)\n", want, nx - bad, nx, f->name,
           sat->boolean ? "true" : "false");
    printf(bad ? "FAIL\n" : "PASS\n");
    return bad ? 1 : 0;
}
