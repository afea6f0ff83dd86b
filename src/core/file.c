/* Atomic file writes (temp file + fsync + rename) and whole-file reads. */
#include "fsdiff/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

fsd_status fsd_atomic_open(fsd_atomic_file *f, const char *final_path) {
    memset(f, 0, sizeof *f);
    if (strlen(final_path) + 16 >= sizeof f->tmp_path)
        return fsd_fail(FSD_ERR_INVALID, "%s: path too long", final_path);
    snprintf(f->final_path, sizeof f->final_path, "%s", final_path);
    /* temp name in the same directory so rename() stays on one filesystem */
    snprintf(f->tmp_path, sizeof f->tmp_path, "%s.tmpXXXXXX", final_path);
    int fd = mkstemp(f->tmp_path);
    if (fd < 0) return fsd_fail(FSD_ERR_IO, "%s: cannot create output: %s", final_path, strerror(errno));
    /* mkstemp makes 0600; give the final file the usual 0666 & ~umask like fopen would */
    mode_t um = umask(0);
    umask(um);
    fchmod(fd, 0666 & ~um);
    f->fp = fdopen(fd, "wb");
    if (!f->fp) {
        int e = errno;
        close(fd);
        unlink(f->tmp_path);
        return fsd_fail(FSD_ERR_IO, "%s: cannot open output: %s", final_path, strerror(e));
    }
    return FSD_OK;
}

void fsd_atomic_abort(fsd_atomic_file *f) {
    if (f->fp) fclose(f->fp);
    f->fp = NULL;
    if (f->tmp_path[0]) unlink(f->tmp_path);
    f->tmp_path[0] = 0;
}

fsd_status fsd_atomic_commit(fsd_atomic_file *f) {
    if (!f->fp) return fsd_fail(FSD_ERR_INTERNAL, "atomic file not open");
    int bad = ferror(f->fp) || fflush(f->fp) != 0 || fsync(fileno(f->fp)) != 0;
    int e = errno;
    if (fclose(f->fp) != 0 && !bad) { bad = 1; e = errno; }
    f->fp = NULL;
    if (bad) {
        unlink(f->tmp_path);
        return fsd_fail(FSD_ERR_IO, "%s: write failed: %s", f->final_path, strerror(e));
    }
    if (rename(f->tmp_path, f->final_path) != 0) {
        e = errno;
        unlink(f->tmp_path);
        return fsd_fail(FSD_ERR_IO, "%s: cannot rename into place: %s", f->final_path, strerror(e));
    }
    f->tmp_path[0] = 0;
    return FSD_OK;
}

fsd_status fsd_write_file_atomic(const char *path, const void *data, size_t n) {
    fsd_atomic_file f;
    fsd_status s = fsd_atomic_open(&f, path);
    if (s) return s;
    if (n && fwrite(data, 1, n, f.fp) != n) {
        int e = errno;
        fsd_atomic_abort(&f);
        return fsd_fail(FSD_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return fsd_atomic_commit(&f);
}

fsd_status fsd_read_file(const char *path, unsigned char **data, size_t *n) {
    *data = NULL;
    *n = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return fsd_fail(FSD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fseek(fp, 0, SEEK_END) != 0) { fclose(fp); return fsd_fail(FSD_ERR_IO, "%s: not a seekable file", path); }
    long sz = ftell(fp);
    if (sz < 0) { fclose(fp); return fsd_fail(FSD_ERR_IO, "%s: cannot get size", path); }
    rewind(fp);
    unsigned char *buf = fsd_alloc((size_t)sz + 1);
    if (!buf) { fclose(fp); return FSD_ERR_NOMEM; }
    if (sz && fread(buf, 1, (size_t)sz, fp) != (size_t)sz) {
        fclose(fp);
        fsd_free(buf);
        return fsd_fail(FSD_ERR_IO, "%s: read failed", path);
    }
    fclose(fp);
    buf[sz] = 0;
    *data = buf;
    *n = (size_t)sz;
    return FSD_OK;
}
