#!/usr/bin/env python3
"""Differential check of examples/kv against redis-server: sends the same
random command stream (seeded) to both and prints every reply that differs.

    redis-server --port 16401 --save '' --appendonly no --databases 1 &
    build/kv --port 16399 &
    python3 examples/kv/compare_redis.py SEED COUNT [REDIS_PORT KV_PORT]

Expiry is time-dependent in both servers, so a rare DBSIZE or GT/LT difference
right after a key's deadline is expected; anything else is a bug.
"""
import socket, random, sys
def conn(port):
    s = socket.create_connection(('127.0.0.1', port)); s.settimeout(2); return s
def mb(args):
    out = b'*%d\r\n' % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b'$%d\r\n%s\r\n' % (len(a), a)
    return out
def read_reply(s, buf):
    # parse one RESP reply from socket, return raw bytes
    def need(n):
        nonlocal buf
        while len(buf) < n:
            c = s.recv(65536)
            if not c: raise EOFError
            buf += c
    def line():
        nonlocal buf
        while b'\r\n' not in buf:
            c = s.recv(65536)
            if not c: raise EOFError
            buf += c
        i = buf.index(b'\r\n'); l = buf[:i+2]; buf = buf[i+2:]; return l
    def one():
        nonlocal buf
        l = line(); t = l[:1]
        if t in b'+-:': return l
        if t == b'$':
            n = int(l[1:-2])
            if n < 0: return l
            need(n+2); d = buf[:n+2]; buf = buf[n+2:]; return l + d
        if t == b'*':
            n = int(l[1:-2]); out = l
            for _ in range(max(n,0)): out += one()
            return out
        raise ValueError(l)
    r = one()
    return r, buf
keys = ['a','b','c','n','', 'x\x00y']
vals = ['1','-5','abc','9223372036854775807','-9223372036854775808','','01',' 2','3.5','100']
opts = ['NX','XX','GET','KEEPTTL','EX','PX','EXAT','PXAT','nx','ex','FOO']
def rnd():
    c = random.choice(['GET','SET','SET','SETOPT','DEL','EXISTS','INCR','INCRBY','DECR','DECRBY','MGET','MSET','EXPIRE','PEXPIRE','TTL','DBSIZE','ECHO','PING','SELECT','FLUSHALL','GETX','UNKNOWN','EXPIREOPT'])
    k = lambda: random.choice(keys); v = lambda: random.choice(vals)
    if c == 'GET': return ['GET', k()]
    if c == 'GETX': return ['GET'] + [k() for _ in range(random.randint(0,2))]
    if c == 'SET': return ['SET', k(), v()]
    if c == 'SETOPT':
        a = ['SET', k(), v()]
        for _ in range(random.randint(1,3)):
            o = random.choice(opts); a.append(o)
            if o.upper() in ('EX','PX') and random.random() < 0.8: a.append(random.choice(['100','1000000','0','-1','x','9999999999999999']))
            if o.upper() in ('EXAT','PXAT') and random.random() < 0.8: a.append(random.choice(['1','0','99999999999999']))
        return a
    if c == 'DEL': return ['DEL'] + [k() for _ in range(random.randint(0,3))]
    if c == 'EXISTS': return ['EXISTS'] + [k() for _ in range(random.randint(0,3))]
    if c in ('INCR','DECR'): return [c, k()] + ([k()] if random.random() < 0.1 else [])
    if c in ('INCRBY','DECRBY'): return [c, k(), v()]
    if c == 'MGET': return ['MGET'] + [k() for _ in range(random.randint(0,3))]
    if c == 'MSET': return ['MSET'] + [random.choice([k(), v()]) for _ in range(random.randint(0,5))]
    if c in ('EXPIRE','PEXPIRE'): return [c, k(), random.choice(['100','1000000','0','-3','x','9223372036854775807','200000'])]
    if c == 'EXPIREOPT': return ['EXPIRE', k(), random.choice(['100','300','50000']), random.choice(['NX','XX','GT','LT','gt','ZZ'])] + ([random.choice(['NX','XX','GT','LT'])] if random.random()<0.3 else [])
    if c == 'TTL': return ['TTL', k()]
    if c == 'DBSIZE': return ['DBSIZE']
    if c == 'ECHO': return ['ECHO'] + [v() for _ in range(random.randint(0,2))]
    if c == 'PING': return ['PING'] + [v() for _ in range(random.randint(0,2))]
    if c == 'SELECT': return ['SELECT', random.choice(['0','1','x','-1'])]
    if c == 'FLUSHALL': return ['FLUSHALL'] if random.random() < 0.3 else ['DBSIZE']
    if c == 'UNKNOWN': return [random.choice(['FOO','bar','GETT'])] + [v() for _ in range(random.randint(0,3))]
random.seed(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
rport = int(sys.argv[3]) if len(sys.argv) > 3 else 16401
kport = int(sys.argv[4]) if len(sys.argv) > 4 else 16399
a, b = conn(rport), conn(kport)
a.sendall(mb(['FLUSHALL'])); b.sendall(mb(['FLUSHALL'])); ba=b''; bb=b''
_, ba = read_reply(a, ba); _, bb = read_reply(b, bb)
bad = 0
hist = []
for i in range(int(sys.argv[2]) if len(sys.argv) > 2 else 3000):
    cmd = rnd(); req = mb(cmd)
    a.sendall(req); b.sendall(req)
    ra, ba = read_reply(a, ba); rb, bb = read_reply(b, bb)
    hist.append((cmd, ra))
    if ra != rb:
        bad += 1
        if bad <= 15: print("DIFF", i, cmd, ra, rb); [print("   ", h) for h in hist[-40:] if len(h[0])>1 and h[0][1] in (cmd[1] if len(cmd)>1 else None,)]
print('done, diffs:', bad)
