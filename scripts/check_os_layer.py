#!/usr/bin/env python3
"""`make layers`: no OS call outside the OS layer. In the core crate, code lines (not comments,
not `#[cfg(test)]` modules) outside a folder named sys/, os/ or platform/ must contain no
`libc::` and no futex: every system call goes through `src/core/sys/` (see its module docs)."""
import re,sys,pathlib
bad=[]
for p in pathlib.Path('src/core').rglob('*.rs'):
    parts=p.parts
    if any(x in ('sys','os','platform') for x in parts): continue
    text=p.read_text()
    # drop #[cfg(test)] mod ... { } blocks (at top level, to end of file by convention)
    m=re.search(r'^#\[cfg\(test\)\]\s*\n\s*mod \w+', text, re.M)
    if m: text=text[:m.start()]
    for i,line in enumerate(text.splitlines(),1):
        code=line.split('//')[0]
        if 'libc::' in code or 'futex' in code.lower():
            bad.append(f"{p}:{i}: {line.strip()}")
print("\n".join(bad)); sys.exit(1 if bad else 0)
