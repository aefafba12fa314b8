/* The C face, from C11 (make test-c builds this with -std=c11 -Wall -Wextra -Werror -pedantic,
 * links it with `pkg-config --libs shmframes`, and runs it plainly and under ASan + UBSan):
 * a frame through a slot and back out of a reader with its metadata exact, and bad calls
 * (NULL handles, wrong sizes, a released frame used again, a slot published twice, a writer
 * used while a slot is open, ...) each return their error code with a message, never crash. */
#include <shmframes.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int checks = 0, failures = 0;

#define EXPECT(cond, ...)                                              \
    do {                                                               \
        checks++;                                                      \
        if (!(cond)) {                                                 \
            failures++;                                                \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);       \
            fprintf(stderr, __VA_ARGS__);                              \
            fprintf(stderr, " [last error: %s]\n", shmframes_last_error_message()); \
        }                                                              \
    } while (0)

#define OK(call) EXPECT((call) == SHMFRAMES_OK, "%s", #call)

/* `got` is the error `want`, and the thread's message names the function and contains
 * `needle`. */
static void expect_error(int line, shmframes_result got, shmframes_result want, const char *needle) {
    const char *msg = shmframes_last_error_message();
    checks++;
    if (got != want || msg == NULL || strstr(msg, needle) == NULL || strncmp(msg, "shmframes_", 10) != 0) {
        failures++;
        fprintf(stderr, "FAIL line %d: got %s, want %s; message \"%s\" should contain \"%s\"\n", line,
                shmframes_result_name((uint32_t)got), shmframes_result_name((uint32_t)want), msg ? msg : "(null)",
                needle);
    }
}
#define ERR(call, want, needle) expect_error(__LINE__, (call), (want), (needle))

int main(void) {
    char name[64], missing[64];
    snprintf(name, sizeof name, "shmframes-ctest-%ld", (long)getpid());
    snprintf(missing, sizeof missing, "shmframes-ctest-missing-%ld", (long)getpid());

    shmframes_writer_options o;
    OK(shmframes_writer_options_init(&o, 64, 48, SHMFRAMES_FORMAT_BGR));
    shmframes_writer *w = NULL;
    ERR(shmframes_writer_create(NULL, &o, &w), SHMFRAMES_ERR_NULL_ARGUMENT, "name is NULL");
    ERR(shmframes_writer_create(name, NULL, &w), SHMFRAMES_ERR_NULL_ARGUMENT, "opts is NULL");
    ERR(shmframes_writer_create(name, &o, NULL), SHMFRAMES_ERR_NULL_ARGUMENT, "out_writer is NULL");
    shmframes_writer_options bad = o;
    bad.shape.format = 99;
    ERR(shmframes_writer_create(name, &bad, &w), SHMFRAMES_ERR_INVALID_ARGUMENT, "pixel format code 99");
    bad = o;
    bad.when_full = 7;
    ERR(shmframes_writer_create(name, &bad, &w), SHMFRAMES_ERR_INVALID_ARGUMENT, "when_full 7");
    bad = o;
    bad.shape.format = SHMFRAMES_FORMAT_NV12;
    bad.shape.width = 63;
    ERR(shmframes_writer_create(name, &bad, &w), SHMFRAMES_ERR_CONFIG, "width");
    bad = o;
    bad.buffer_frames = 0;
    ERR(shmframes_writer_create(name, &bad, &w), SHMFRAMES_ERR_CONFIG, "buffer_frames");
    ERR(shmframes_writer_create("a/b", &o, &w), SHMFRAMES_ERR_INVALID_NAME, "a/b");
    EXPECT(w == NULL, "no writer made by failed calls");

    OK(shmframes_writer_create(name, &o, &w));
    shmframes_writer *again = NULL;
    ERR(shmframes_writer_create(name, &o, &again), SHMFRAMES_ERR_PRODUCER_ALIVE, "already has a live producer");

    shmframes_reader_options ro;
    OK(shmframes_reader_options_init(&ro));
    ro.lossless = true;
    shmframes_reader *r = NULL;
    ERR(shmframes_reader_open(missing, &ro, &r), SHMFRAMES_ERR_CHANNEL_NOT_FOUND, "no channel named");
    OK(shmframes_reader_open(name, &ro, &r));

    /* A frame through a slot. */
    shmframes_slot *s = NULL;
    OK(shmframes_writer_take_slot(w, 0, &s));
    EXPECT(s != NULL, "a slot");
    uint8_t *px = NULL;
    size_t len = 0;
    OK(shmframes_slot_pixels(s, &px, &len));
    EXPECT(len == 64 * 48 * 3 && px != NULL && ((uintptr_t)px % 64) == 0, "pixels %zu", len);
    shmframes_slot *second = NULL;
    ERR(shmframes_writer_take_slot(w, 0, &second), SHMFRAMES_ERR_SLOT_OPEN, "publish or discard it");
    uint64_t count = 0;
    ERR(shmframes_writer_frames_published(w, &count), SHMFRAMES_ERR_SLOT_OPEN, "is open");
    ERR(shmframes_slot_write(s, px, len - 1), SHMFRAMES_ERR_WRONG_FRAME_SIZE, "9215 bytes given");
    ERR(shmframes_slot_write(s, NULL, len), SHMFRAMES_ERR_NULL_ARGUMENT, "pixels is NULL");
    uint8_t *src = malloc(len);
    for (size_t i = 0; i < len; i++) src[i] = (uint8_t)(i * 31 + 7);
    OK(shmframes_slot_write(s, src, len));
    OK(shmframes_slot_set_seq(s, 41));
    OK(shmframes_slot_set_capture_ns(s, 1234));
    uint64_t seq = 0;
    OK(shmframes_slot_seq(s, &seq));
    EXPECT(seq == 41, "seq %llu", (unsigned long long)seq);
    const uint64_t before = shmframes_monotonic_ns();
    OK(shmframes_slot_publish(s, &seq));
    EXPECT(seq == 41, "published as %llu", (unsigned long long)seq);
    ERR(shmframes_slot_publish(s, &seq), SHMFRAMES_ERR_SLOT_DONE, "was published already (as frame 41)");
    ERR(shmframes_slot_pixels(s, &px, &len), SHMFRAMES_ERR_SLOT_DONE, "published already");
    ERR(shmframes_slot_discard(s), SHMFRAMES_ERR_SLOT_DONE, "published already");
    ERR(shmframes_slot_set_seq(s, 1), SHMFRAMES_ERR_SLOT_DONE, "published already");
    shmframes_slot_free(s);
    OK(shmframes_writer_frames_published(w, &count));
    EXPECT(count == 1, "1 published, not %llu", (unsigned long long)count);

    /* ... and out of the reader, exact. */
    shmframes_frame *f = NULL, *none = NULL;
    OK(shmframes_reader_read(r, 1000000000LL, &f));
    shmframes_frame_info info;
    OK(shmframes_frame_get_info(f, &info));
    EXPECT(info.seq == 41 && info.capture_ns == 1234, "seq %llu capture %llu", (unsigned long long)info.seq,
           (unsigned long long)info.capture_ns);
    EXPECT(info.publish_ns >= before && info.publish_ns <= shmframes_monotonic_ns(), "publish_ns");
    EXPECT(info.shape.width == 64 && info.shape.height == 48 && info.shape.stride == 192 &&
               info.shape.format == SHMFRAMES_FORMAT_BGR && info.planes == 1 && info.plane[0].rows == 48,
           "shape");
    EXPECT(info.len == len && memcmp(info.data, src, len) == 0, "pixels exact");
    EXPECT(info.lost_before == 0 && !info.raw, "lost_before, raw");
    EXPECT(strcmp(shmframes_format_name(info.shape.format), "bgr") == 0, "format name");
    OK(shmframes_frame_release(f));
    ERR(shmframes_frame_get_info(f, &info), SHMFRAMES_ERR_FRAME_RELEASED, "was released");
    ERR(shmframes_frame_release(f), SHMFRAMES_ERR_FRAME_RELEASED, "was released");
    shmframes_frame_free(f);
    f = (shmframes_frame *)1;
    EXPECT(shmframes_reader_read(r, 0, &f) == SHMFRAMES_TIMEOUT && f == NULL, "nothing more: timeout, NULL");
    EXPECT(shmframes_reader_read(r, 2000000, &f) == SHMFRAMES_TIMEOUT, "a 2 ms timeout");

    /* Writes, readers. */
    ERR(shmframes_writer_write(w, src, len + 1, 0, 0), SHMFRAMES_ERR_WRONG_FRAME_SIZE, "9217");
    OK(shmframes_writer_write(w, src, len, 99, 0));
    shmframes_reader_info infos[4];
    size_t n = 0;
    OK(shmframes_readers(name, infos, 4, &n));
    EXPECT(n == 1 && infos[0].lossless && infos[0].pid == (uint32_t)getpid(), "one lossless reader: %zu", n);
    OK(shmframes_writer_readers(w, NULL, 0, &n));
    EXPECT(n == 1, "writer sees %zu readers", n);
    ERR(shmframes_readers(name, NULL, 1, &n), SHMFRAMES_ERR_NULL_ARGUMENT, "out_readers is NULL");
    OK(shmframes_reader_set_anticipate(r, false)); /* how it waits: read on either way */
    OK(shmframes_reader_set_anticipate(r, true));
    OK(shmframes_reader_read(r, 1000000000LL, &f));
    OK(shmframes_frame_get_info(f, &info));
    EXPECT(info.seq == 42 && info.capture_ns == 99, "written frame seq %llu", (unsigned long long)info.seq);
    /* A frame outlives its reader... */
    shmframes_reader *r2 = NULL;
    OK(shmframes_reader_open(name, NULL, &r2));
    OK(shmframes_reader_close(r2));
    ERR(shmframes_reader_close(r2), SHMFRAMES_ERR_CLOSED, "is closed");
    ERR(shmframes_reader_read(r2, 0, &none), SHMFRAMES_ERR_CLOSED, "is closed");
    ERR(shmframes_reader_set_anticipate(r2, false), SHMFRAMES_ERR_CLOSED, "is closed");
    shmframes_reader_free(r2);

    /* A cancel ends a wait for ever. */
    shmframes_cancel *c = NULL;
    OK(shmframes_cancel_new(&c));
    OK(shmframes_reader_set_cancel(r, c));
    EXPECT(!shmframes_cancel_is_fired(c), "not fired");
    OK(shmframes_cancel_fire(c));
    EXPECT(shmframes_cancel_is_fired(c), "fired");
    ERR(shmframes_reader_read(r, SHMFRAMES_FOREVER, &none), SHMFRAMES_ERR_INTERRUPTED, "interrupted");
    shmframes_cancel_free(c);
    OK(shmframes_reader_set_cancel(r, NULL));

    /* NULL handles everywhere. */
    ERR(shmframes_writer_take_slot(NULL, 0, &s), SHMFRAMES_ERR_NULL_ARGUMENT, "writer is NULL");
    ERR(shmframes_writer_take_slot(w, 0, NULL), SHMFRAMES_ERR_NULL_ARGUMENT, "out_slot is NULL");
    ERR(shmframes_slot_publish(NULL, &seq), SHMFRAMES_ERR_NULL_ARGUMENT, "slot is NULL");
    ERR(shmframes_slot_pixels(NULL, &px, &len), SHMFRAMES_ERR_NULL_ARGUMENT, "slot is NULL");
    ERR(shmframes_reader_read(NULL, 0, &none), SHMFRAMES_ERR_NULL_ARGUMENT, "reader is NULL");
    ERR(shmframes_reader_set_anticipate(NULL, true), SHMFRAMES_ERR_NULL_ARGUMENT, "reader is NULL");
    ERR(shmframes_reader_read(r, 0, NULL), SHMFRAMES_ERR_NULL_ARGUMENT, "out_frame is NULL");
    ERR(shmframes_frame_get_info(NULL, &info), SHMFRAMES_ERR_NULL_ARGUMENT, "frame is NULL");
    ERR(shmframes_frame_get_info(f, NULL), SHMFRAMES_ERR_NULL_ARGUMENT, "out_info is NULL");
    ERR(shmframes_frame_release(NULL), SHMFRAMES_ERR_NULL_ARGUMENT, "frame is NULL");
    ERR(shmframes_reader_dropped(NULL, &count), SHMFRAMES_ERR_NULL_ARGUMENT, "reader is NULL");
    ERR(shmframes_writer_write(NULL, src, len, 0, 0), SHMFRAMES_ERR_NULL_ARGUMENT, "writer is NULL");
    ERR(shmframes_cancel_fire(NULL), SHMFRAMES_ERR_NULL_ARGUMENT, "cancel is NULL");
    ERR(shmframes_format_parse("purple", (uint32_t *)&n), SHMFRAMES_ERR_INVALID_ARGUMENT, "purple");
    shmframes_writer_free(NULL);
    shmframes_reader_free(NULL);
    shmframes_slot_free(NULL);
    shmframes_frame_free(NULL);
    shmframes_cancel_free(NULL);
    EXPECT(strcmp(shmframes_result_name(SHMFRAMES_ERR_PRODUCER_GONE), "SHMFRAMES_ERR_PRODUCER_GONE") == 0, "name");
    EXPECT(strcmp(shmframes_result_name(12345), "unknown") == 0, "unknown name");
    uint32_t fmt = 0;
    OK(shmframes_format_parse("YUY2", &fmt));
    EXPECT(fmt == SHMFRAMES_FORMAT_YUYV, "yuy2 is yuyv");

    /* A slot left open when its writer closes is done, and its handle still safe. */
    OK(shmframes_writer_take_slot(w, 0, &s));
    OK(shmframes_writer_close(w));
    ERR(shmframes_slot_publish(s, &seq), SHMFRAMES_ERR_SLOT_DONE, "discarded");
    shmframes_slot_free(s);
    ERR(shmframes_writer_close(w), SHMFRAMES_ERR_CLOSED, "closed already");
    ERR(shmframes_writer_take_slot(w, 0, &s), SHMFRAMES_ERR_CLOSED, "is closed");
    /* The reader drains (the frame it holds stays valid), then the stream has ended. */
    OK(shmframes_frame_get_info(f, &info));
    EXPECT(info.seq == 42, "held frame still readable");
    ERR(shmframes_reader_read(r, 1000000000LL, &none), SHMFRAMES_ERR_END_OF_STREAM, "ended the stream");
    shmframes_writer_free(w);
    shmframes_reader_free(r);
    shmframes_frame_free(f); /* after its reader */

    /* A slot freed with its writer still open discards the frame; the writer goes on. */
    OK(shmframes_writer_create(name, &o, &w));
    OK(shmframes_writer_take_slot(w, 0, &s));
    shmframes_slot_free(s);
    OK(shmframes_writer_frames_published(w, &count));
    EXPECT(count == 0, "discarded, not published");
    OK(shmframes_writer_take_slot(w, 0, &s));
    shmframes_writer_free(w); /* discards the open slot */
    ERR(shmframes_slot_pixels(s, &px, &len), SHMFRAMES_ERR_SLOT_DONE, "discarded");
    shmframes_slot_free(s);
    free(src);

    char path[96];
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    EXPECT(access(path, F_OK) != 0, "nothing left in /dev/shm");
    printf("c11_check: %d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
