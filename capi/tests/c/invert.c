/* Inverts a photo through iterinv's C API alone (iterinv.h), then saves the inversion, loads it
 * on a second context made from the cascade's folders and regenerates the photo from it.
 * Run by tests/c_program.rs:
 *
 *   invert PHOTO.ppm OUT_DIR STAGE1_DIR STAGE2_DIR
 *
 * PHOTO.ppm is a binary PPM (P6, 8 bits); it is handed to iterinv as RGBA8 rows with padding
 * between them. With the built-in cascade (the same models as STAGE1_DIR and STAGE2_DIR) it
 * inverts stages I and II with DDIM at stage I and the fixed point at stage II, 5 steps, and
 * writes OUT_DIR/inverted-stage{1,2}.ppm (iterinv_invert's reconstructions) and
 * OUT_DIR/replayed-stage{1,2}.ppm (iterinv_reconstruct's from the saved folder OUT_DIR/inversion).
 * It also checks that progress is reported, that a cancelled or wrong call fails cleanly, and
 * that a memory budget too small for the inversion refuses it.
 * Exit status 0 when every check passed. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iterinv.h"

#define CHECK(call)                                                                 \
    do {                                                                            \
        IterinvStatus status_ = (call);                                             \
        if (status_ != ITERINV_STATUS_OK) {                                         \
            fprintf(stderr, "%s:%d: %s failed (%d): %s\n", __FILE__, __LINE__, #call, \
                    (int)status_, iterinv_last_error());                            \
            exit(1);                                                                \
        }                                                                           \
    } while (0)

#define EXPECT(cond)                                                          \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                          \
        }                                                                     \
    } while (0)

/* Where the progress callback has been. */
typedef struct {
    unsigned calls;
    unsigned max_stage;
    unsigned timesteps; /* the largest `total` seen */
    int cancel;         /* answer nonzero to the first call */
} Progress;

static int32_t on_progress(void *user, uint32_t stage, const char *phase, uint32_t step,
                           uint32_t total, double loss) {
    Progress *p = (Progress *)user;
    EXPECT(phase != NULL && step <= total + 1);
    (void)loss;
    p->calls++;
    if (stage > p->max_stage) p->max_stage = stage;
    if (total > p->timesteps) p->timesteps = total;
    return p->cancel;
}

static unsigned char *read_ppm(const char *path, uint32_t *width, uint32_t *height) {
    FILE *f = fopen(path, "rb");
    unsigned w, h, max;
    EXPECT(f != NULL);
    EXPECT(fscanf(f, "P6 %u %u %u", &w, &h, &max) == 3 && max == 255);
    fgetc(f); /* the one whitespace byte before the pixels */
    unsigned char *rgb = malloc((size_t)w * h * 3);
    EXPECT(rgb != NULL && fread(rgb, 3, (size_t)w * h, f) == (size_t)w * h);
    fclose(f);
    *width = w;
    *height = h;
    return rgb;
}

static void write_ppm(const char *dir, const char *name, const IterinvImage *image) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    EXPECT(f != NULL && image->format == ITERINV_PIXEL_FORMAT_RGB8);
    fprintf(f, "P6\n%u %u\n255\n", image->width, image->height);
    for (uint32_t y = 0; y < image->height; y++)
        EXPECT(fwrite(image->pixels + y * image->stride, 3, image->width, f) == image->width);
    fclose(f);
}

/* Stage `stage`'s image of `inversion`, written to DIR/<prefix>-stage<stage>.ppm. */
static void write_stage(const IterinvInversion *inversion, size_t stage, const char *dir,
                        const char *prefix) {
    IterinvImage image;
    char name[64];
    CHECK(iterinv_inversion_image(inversion, stage, ITERINV_PIXEL_FORMAT_RGB8, &image));
    EXPECT(image.stride == 3 * (size_t)image.width);
    snprintf(name, sizeof name, "%s-stage%zu.ppm", prefix, stage);
    write_ppm(dir, name, &image);
    iterinv_image_free(&image);
    EXPECT(image.pixels == NULL);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s PHOTO.ppm OUT_DIR STAGE1_DIR STAGE2_DIR\n", argv[0]);
        return 2;
    }
    const char *out_dir = argv[2];
    printf("iterinv %s\n", iterinv_version());

    /* The photo as RGBA8 rows 16 bytes longer than the pixels (junk in between). */
    uint32_t width, height;
    unsigned char *rgb = read_ppm(argv[1], &width, &height);
    size_t stride = (size_t)width * 4 + 16;
    unsigned char *rgba = malloc(stride * height);
    EXPECT(rgba != NULL);
    memset(rgba, 0xAB, stride * height);
    for (uint32_t y = 0; y < height; y++)
        for (uint32_t x = 0; x < width; x++) {
            memcpy(rgba + y * stride + 4 * x, rgb + 3 * ((size_t)y * width + x), 3);
            rgba[y * stride + 4 * x + 3] = 255;
        }
    IterinvImage photo = {rgba, width, height, stride, ITERINV_PIXEL_FORMAT_RGBA8};

    IterinvContext *builtin = NULL;
    CHECK(iterinv_context_new_builtin(&builtin));
    printf("device: %s, built-in cascade of %zu stages\n", iterinv_context_device(builtin),
           iterinv_context_stages(builtin));
    EXPECT(iterinv_context_stages(builtin) == 3);

    IterinvInvertOptions options;
    iterinv_invert_options_default(&options);
    EXPECT(options.steps == 50 && options.stages == 0);
    options.stages = 2;
    options.steps = 5;
    options.stage1_method = "ddim";
    options.sr_method = "fixed-point";
    options.passes = 2;

    /* Wrong calls fail with a status and a message, and leave the output NULL. */
    IterinvInversion *inversion = (IterinvInversion *)&photo;
    EXPECT(iterinv_invert(builtin, &photo, NULL, &options, NULL, NULL, &inversion) ==
           ITERINV_STATUS_INVALID_ARGUMENT);
    EXPECT(inversion == NULL && strstr(iterinv_last_error(), "prompt") != NULL);
    IterinvInvertOptions bad = options;
    bad.sr_method = "newton";
    EXPECT(iterinv_invert(builtin, &photo, "a photo of a cat", &bad, NULL, NULL, &inversion) ==
           ITERINV_STATUS_INVALID_ARGUMENT);
    EXPECT(strstr(iterinv_last_error(), "fixed-point") != NULL);
    IterinvImage short_rows = photo;
    short_rows.stride = 4 * (size_t)width - 1;
    EXPECT(iterinv_invert(builtin, &short_rows, "a photo of a cat", &options, NULL, NULL,
                          &inversion) == ITERINV_STATUS_INVALID_ARGUMENT);

    /* A cancelled inversion stops at the first report and makes nothing. */
    Progress cancelled = {0, 0, 0, 1};
    EXPECT(iterinv_invert(builtin, &photo, "a photo of a cat", &options, on_progress,
                          &cancelled, &inversion) == ITERINV_STATUS_CANCELLED);
    EXPECT(inversion == NULL && cancelled.calls == 1);

    /* A memory budget under what the inversion plans to hold refuses it before it runs; no
     * budget (0) lifts it. */
    CHECK(iterinv_context_set_memory_budget(builtin, 1u << 20));
    EXPECT(iterinv_invert(builtin, &photo, "a photo of a cat", &options, NULL, NULL,
                          &inversion) == ITERINV_STATUS_GPU);
    EXPECT(inversion == NULL && strstr(iterinv_last_error(), "would need") != NULL);
    CHECK(iterinv_context_set_memory_budget(builtin, 0));
    EXPECT(iterinv_context_set_memory_budget(NULL, 0) == ITERINV_STATUS_INVALID_ARGUMENT);

    /* The inversion, its reconstructions, and the saved folder. */
    Progress progress = {0, 0, 0, 0};
    CHECK(iterinv_invert(builtin, &photo, "a photo of a cat", &options, on_progress, &progress,
                         &inversion));
    printf("progress: %u reports, up to stage %u, %u timesteps\n", progress.calls,
           progress.max_stage, progress.timesteps);
    EXPECT(progress.max_stage == 2 && progress.timesteps == 5);
    EXPECT(iterinv_inversion_stages(inversion) == 2);
    IterinvImage image;
    EXPECT(iterinv_inversion_image(inversion, 3, ITERINV_PIXEL_FORMAT_RGB8, &image) ==
           ITERINV_STATUS_INVALID_ARGUMENT);
    EXPECT(image.pixels == NULL);
    CHECK(iterinv_inversion_image(inversion, 2, ITERINV_PIXEL_FORMAT_RGBA8, &image));
    EXPECT(image.width == 32 && image.height == 32 && image.stride == 128);
    EXPECT(image.pixels[3] == 255);
    iterinv_image_free(&image);
    write_stage(inversion, 1, out_dir, "inverted");
    write_stage(inversion, 2, out_dir, "inverted");
    char saved[4096];
    snprintf(saved, sizeof saved, "%s/inversion", out_dir);
    CHECK(iterinv_inversion_save(inversion, saved));
    iterinv_inversion_free(inversion);
    iterinv_context_free(builtin);

    /* Another context, from the folders: load the saved inversion and replay it. */
    IterinvContext *folders = NULL;
    const char *upper[] = {argv[4]};
    CHECK(iterinv_context_new(argv[3], upper, 1, NULL, &folders));
    IterinvInversion *loaded = NULL;
    CHECK(iterinv_inversion_load(saved, &loaded));
    EXPECT(iterinv_inversion_image(loaded, 1, ITERINV_PIXEL_FORMAT_RGB8, &image) ==
           ITERINV_STATUS_INVALID_ARGUMENT);
    CHECK(iterinv_reconstruct(folders, loaded, NULL, NULL));
    write_stage(loaded, 1, out_dir, "replayed");
    write_stage(loaded, 2, out_dir, "replayed");
    iterinv_inversion_free(loaded);
    iterinv_context_free(folders);

    /* Missing folders fail cleanly. */
    IterinvContext *missing = (IterinvContext *)&photo;
    EXPECT(iterinv_context_new("/nonexistent/stage1", NULL, 0, NULL, &missing) != ITERINV_STATUS_OK);
    EXPECT(missing == NULL && strstr(iterinv_last_error(), "/nonexistent/stage1") != NULL);

    free(rgba);
    free(rgb);
    printf("ok\n");
    return 0;
}
