# Otter's gdb extension: green processes seen from gdb, in a live program or
# a core file. Load it with `source <prefix>/share/otter/gdb/otter-gdb.py`
# (or let gdb auto-load the copy installed beside libotter.so). Commands:
#
#   otter processes            one line per live process: pid, name,
#                              behaviour, status, scheduler, kind, mailbox
#                              length, current function
#   otter bt <0.N.M> | N       the backtrace of a switched-out process
#
# It reads the runtime's own tables through the debug information (the
# process table in ptab.c, struct ot_proc in runtime/proc/proc.h) and walks a parked
# process's stack from its saved context through frame pointers, as ot_dump
# does (runtime/sched/ctx.h: OT_CTX_FP_WORD, OT_CTX_PC_WORD). Nothing here
# writes to the inferior.
import gdb

STATES = {0: "free", 1: "running", 2: "runnable", 3: "waiting", 4: "exiting"}
PF_HANDLER = 1 << 0
PF_FOREIGN = 1 << 6
# the runtime's own sources: frames in them are not "where the process is"
RUNTIME_DIRS = ("runtime/",)
MAX_FRAMES = 64


def _ctx_words():
    arch = gdb.selected_inferior().architecture().name()
    return (10, 11) if "aarch64" in arch else (6, 7)  # (fp word, pc word)


def _static(name, filename):
    for sym in gdb.lookup_static_symbols(name):
        if sym.symtab and sym.symtab.filename.endswith(filename):
            return sym.value()
    raise gdb.GdbError("otter: no symbol %s in %s: is this a program using Otter, "
                       "with debug information?" % (name, filename))


def _u64(v):
    return int(v) & 0xFFFFFFFFFFFFFFFF


def _read_word(addr):
    mem = gdb.selected_inferior().read_memory(addr, 8)
    return int.from_bytes(bytes(mem), "little")


def _cstr(ptr):
    try:
        return ptr.string() if int(ptr) else ""
    except gdb.MemoryError:
        return "?"


def processes():
    """(pid value, gdb.Value of struct ot_proc) for every live process."""
    table = _static("table", "ptab.c")
    if int(table) == 0:
        return []
    n = int(_static("bump", "ptab.c"))
    out = []
    for i in range(n):
        p = table[i]
        pid = _u64(p["pid"])
        if not pid or int(p["state"]) == 0 or int(p["flags"]) & PF_FOREIGN:
            continue
        if int(p["aflags"]) & (1 << 4):  # PF_DEAD
            continue
        out.append((pid, p))
    return out


def pid_str(pid):
    return "<0.%d.%d>" % (pid & 0xFFFFFFFF, pid >> 32)


def frames(p):
    """Return addresses of a switched-out process's frames, innermost first."""
    if int(p["state"]) not in (2, 3):  # runnable or waiting: switched out
        return []
    stk = p["stack"]
    if int(stk) == 0:
        return []
    lo, hi = int(stk["lo"]), int(stk["hi"])
    sp = int(p["sp"])
    fp_word, pc_word = _ctx_words()
    if sp < lo or sp + (pc_word + 1) * 8 > hi:
        return []
    pcs = [_read_word(sp + 8 * pc_word)]
    fp, prev = _read_word(sp + 8 * fp_word), sp
    while len(pcs) < MAX_FRAMES and prev < fp and lo <= fp and fp + 16 <= hi and fp % 8 == 0:
        pc = _read_word(fp + 8)
        if not pc:
            break
        pcs.append(pc)
        prev, fp = fp, _read_word(fp)
    return pcs


def describe(pc, return_address=True):
    """(function name, file, line) for a code address."""
    look = pc - 1 if return_address else pc
    name, filename, line = None, None, 0
    try:
        block = gdb.block_for_pc(look)
        while block is not None and block.function is None:
            block = block.superblock
        if block is not None:
            name = block.function.print_name
    except RuntimeError:
        pass
    sal = gdb.find_pc_line(look)
    if sal.symtab is not None:
        filename, line = sal.symtab.filename, sal.line
    if name is None:
        ms = gdb.execute("info symbol 0x%x" % pc, to_string=True).strip()
        if not ms.startswith("No symbol"):
            name = ms.split(" in section")[0]
    return name, filename, line


def in_runtime(filename):
    return filename is not None and any(
        filename.startswith(d) or ("/" + d) in filename for d in RUNTIME_DIRS)


def current_function(p):
    for pc in frames(p):
        name, filename, _ = describe(pc)
        if name and filename and not in_runtime(filename):
            return name
    entry = p["hfn"] if int(p["flags"]) & PF_HANDLER else p["fn"]
    if int(entry) == 0:
        return "?"
    name, _, _ = describe(int(entry), return_address=False)
    return name or "0x%x" % int(entry)


def mailbox_len(p):
    """Messages in the private queue plus those still on the MPSC list."""
    n = int(p["q_len"])
    stub = int(p["stub"].address)
    node, steps = int(p["mq_head"]), 0
    env_t = gdb.lookup_type("struct env").pointer()
    while node and steps < 1000000:
        if node != stub:
            n += 1
        node = int(gdb.Value(node).cast(env_t)["next"])
        steps += 1
    return n


class OtterPrefix(gdb.Command):
    """Otter's green processes: otter processes, otter bt <pid>."""

    def __init__(self):
        super().__init__("otter", gdb.COMMAND_USER, prefix=True)


class OtterProcesses(gdb.Command):
    """List Otter's live processes: pid, name, behaviour, status, scheduler,
kind, mailbox length and current function."""

    def __init__(self):
        super().__init__("otter processes", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        procs = processes()
        print("%-14s %-20s %-16s %-9s %5s %-8s %7s  %s" % (
            "pid", "name", "behaviour", "status", "sched", "kind", "mailbox", "current"))
        for pid, p in procs:
            sched = p["sched"]
            print("%-14s %-20s %-16s %-9s %5s %-8s %7d  %s" % (
                pid_str(pid), _cstr(p["name"]) or "-", _cstr(p["behaviour"]) or "-",
                STATES.get(int(p["state"]), "?"),
                str(int(sched["id"])) if int(sched) else "-",
                "handler" if int(p["flags"]) & PF_HANDLER else "stackful",
                mailbox_len(p), current_function(p)))
        print("%d processes" % len(procs))


def parse_pid(arg):
    a = arg.strip()
    if a.startswith("<") and a.endswith(">"):
        parts = a[1:-1].split(".")
        if len(parts) != 3:
            raise gdb.GdbError("otter bt: a pid looks like <0.N.M>")
        return int(parts[1]), int(parts[2])
    if a.isdigit():
        return int(a), None
    raise gdb.GdbError("otter bt: give a pid (<0.N.M>) or a process table index")


class OtterBacktrace(gdb.Command):
    """Print the backtrace of a switched-out Otter process: otter bt <0.N.M>."""

    def __init__(self):
        super().__init__("otter bt", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        index, gen = parse_pid(arg)
        for pid, p in processes():
            if (pid & 0xFFFFFFFF) == index and (gen is None or pid >> 32 == gen):
                break
        else:
            raise gdb.GdbError("otter bt: no live process %s" % arg.strip())
        pcs = frames(p)
        state = STATES.get(int(p["state"]), "?")
        print("process %s (%s, %s):" % (pid_str(pid), state,
                                        "handler" if int(p["flags"]) & PF_HANDLER else "stackful"))
        if not pcs:
            print("  no frames: it is %s, or holds no stack of its own" % state)
            return
        for i, pc in enumerate(pcs):
            name, filename, line = describe(pc)
            where = " at %s:%d" % (filename, line) if filename else ""
            print("#%-2d 0x%016x in %s ()%s" % (i, pc, name or "??", where))


OtterPrefix()
OtterProcesses()
OtterBacktrace()
