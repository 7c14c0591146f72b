/* Instruction addresses as "symbol+offset" for crash reports (log.c) and the
 * fatal fault report (fault.c). dladdr knows only exported symbols; static
 * functions, and everything of a library built with hidden visibility (ours),
 * are found in the object's own ELF symbol table (.symtab), read from its
 * file (the running program's through /proc/self/exe). Only system calls
 * (open, fstat, mmap) and dladdr1, so the fatal path in the signal handler
 * may use it; nothing is cached, which costs a mapping per lookup on a path
 * that runs once per crash. A stripped object gives "object+0xoffset", which
 * addr2line resolves against its debug file. */
#include "runtime/debug/debug.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The function in the object at path whose range holds addr (a link-time
 * address); its name is copied to name. */
static bool symtab_lookup(const char *path, uintptr_t addr, char *name, size_t len,
                          uintptr_t *off) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    bool found = false;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(ElfW(Ehdr))) {
        close(fd);
        return false;
    }
    size_t size = (size_t)st.st_size;
    const unsigned char *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return false;
    const ElfW(Ehdr) *eh = (const void *)m;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_shentsize != sizeof(ElfW(Shdr)) ||
        eh->e_shoff > size || (size - eh->e_shoff) / sizeof(ElfW(Shdr)) < eh->e_shnum)
        goto out;
    const ElfW(Shdr) *sh = (const void *)(m + eh->e_shoff);
    for (unsigned i = 0; i < eh->e_shnum && !found; i++) {
        if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum)
            continue;
        const ElfW(Shdr) *strs = &sh[sh[i].sh_link];
        if (sh[i].sh_offset > size || sh[i].sh_size > size - sh[i].sh_offset ||
            strs->sh_offset > size || strs->sh_size > size - strs->sh_offset)
            continue;
        const ElfW(Sym) *sym = (const void *)(m + sh[i].sh_offset);
        size_t n = sh[i].sh_size / sizeof(ElfW(Sym));
        const char *str = (const char *)(m + strs->sh_offset);
        for (size_t k = 0; k < n; k++) {
            if (ELF64_ST_TYPE(sym[k].st_info) != STT_FUNC || sym[k].st_shndx == SHN_UNDEF ||
                addr < sym[k].st_value || addr >= sym[k].st_value + sym[k].st_size ||
                sym[k].st_name >= strs->sh_size)
                continue;
            const char *s = str + sym[k].st_name;
            size_t j = 0;
            while (j + 1 < len && sym[k].st_name + j < strs->sh_size && s[j]) {
                name[j] = s[j];
                j++;
            }
            name[j] = 0;
            *off = addr - sym[k].st_value;
            found = true;
            break;
        }
    }
out:
    munmap((void *)(uintptr_t)m, size);
    return found;
}

bool ot__sched_hook_symbolize(uintptr_t pc, struct ot__sym *out) {
    Dl_info di;
    struct link_map *lm = NULL;
    out->name[0] = 0;
    out->obj = NULL;
    if (!dladdr1((void *)pc, &di, (void **)&lm, RTLD_DL_LINKMAP) || !lm)
        return false;
    const char *path = lm->l_name && lm->l_name[0] ? lm->l_name : "/proc/self/exe";
    const char *obj = di.dli_fname && di.dli_fname[0] ? di.dli_fname : path;
    const char *slash = strrchr(obj, '/');
    out->obj = slash ? slash + 1 : obj;
    out->objoff = pc - (uintptr_t)di.dli_fbase;
    if (di.dli_sname && di.dli_saddr) {
        size_t j = 0;
        while (j + 1 < sizeof out->name && di.dli_sname[j]) {
            out->name[j] = di.dli_sname[j];
            j++;
        }
        out->name[j] = 0;
        out->off = pc - (uintptr_t)di.dli_saddr;
        return true;
    }
    return symtab_lookup(path, pc - lm->l_addr, out->name, sizeof out->name, &out->off);
}
