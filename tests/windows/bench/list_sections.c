/* Can `frame-stats --list` find channels on Windows the way it lists /dev/shm on Linux? This
 * creates two named mappings (one under a bare name, as cpp_py_shmbuf does), then lists the
 * session's named-object directory (\Sessions\<id>\BaseNamedObjects, what the bare name and
 * Local\ resolve to) with ntdll's NtOpenDirectoryObject/NtQueryDirectoryObject and prints the
 * objects of type Section. Exit 0 when both mappings are listed.
 *
 *   list_sections */
#include "common.h"
#include <wchar.h>

typedef LONG NTSTATUS;
typedef struct { USHORT Length, MaximumLength; PWSTR Buffer; } USTR;
typedef struct { ULONG Length; HANDLE RootDirectory; USTR* ObjectName; ULONG Attributes;
                 PVOID SecurityDescriptor, SecurityQualityOfService; } OBJ_ATTRS;
typedef struct { USTR Name, TypeName; } DIR_INFO;
NTSTATUS NTAPI NtOpenDirectoryObject(HANDLE*, ACCESS_MASK, OBJ_ATTRS*);
NTSTATUS NTAPI NtQueryDirectoryObject(HANDLE, PVOID, ULONG, BOOLEAN, BOOLEAN, ULONG*, ULONG*);
#define DIRECTORY_QUERY 0x0001

int main(void) {
    HANDLE a = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, 4096, "shmframes-list-bare");
    HANDLE b = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, 4096, "Local\\shmframes-list-local");
    if (!a || !b) die("CreateFileMapping");
    DWORD session = 0;
    ProcessIdToSessionId(GetCurrentProcessId(), &session);
    wchar_t path[64];
    swprintf(path, 64, L"\\Sessions\\%lu\\BaseNamedObjects", session);
    USTR name = {(USHORT)(wcslen(path) * 2), (USHORT)(wcslen(path) * 2 + 2), path};
    OBJ_ATTRS oa = {sizeof oa, NULL, &name, 0x40 /* OBJ_CASE_INSENSITIVE */, NULL, NULL};
    HANDLE dir;
    NTSTATUS st = NtOpenDirectoryObject(&dir, DIRECTORY_QUERY, &oa);
    if (st) { fprintf(stderr, "NtOpenDirectoryObject(%ls): status %#lx\n", path, (unsigned long)st); return 1; }
    static union { DIR_INFO info[1]; char bytes[65536]; } buf;
    ULONG ctx = 0, len = 0;
    int sections = 0, found = 0, objects = 0;
    BOOLEAN first = TRUE;
    for (;;) {
        /* One entry per call: Wine 8 answers nothing for a whole batch. */
        st = NtQueryDirectoryObject(dir, &buf, sizeof buf, TRUE, first, &ctx, &len);
        first = FALSE;
        if (st < 0 || st == 0x8000001A /* STATUS_NO_MORE_ENTRIES */) break;
        buf.info[1].Name.Buffer = NULL;
        for (DIR_INFO* e = buf.info; e->Name.Buffer; e++) {
            objects++;
            if (wcsncmp(e->TypeName.Buffer, L"Section", e->TypeName.Length / 2) == 0 && e->TypeName.Length == 14) {
                sections++;
                printf("  section %.*ls\n", e->Name.Length / 2, e->Name.Buffer);
                if (wcsncmp(e->Name.Buffer, L"shmframes-list-", 15) == 0) found++;
            }
        }
    }
    printf("%ls: %d objects, %d sections, %d of ours found\n", path, objects, sections, found);
    return found == 2 ? 0 : 1;
}
