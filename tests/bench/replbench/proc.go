package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/drover-sre/drover/tests/testenv"
)

// cpuUse is CPU time (user + system) spent during a phase by this process
// (where Drover's applier runs), the source's mariadbd and the replica's
// mariadbd.
type cpuUse struct {
	self, source, replica time.Duration
}

// cpuMeter starts measuring; the returned function reports the CPU time
// used since.
func (b *bench) cpuMeter(replica *testenv.Server) func() cpuUse {
	read := func() cpuUse {
		return cpuUse{self: selfCPU(), source: serverCPU(b.src), replica: serverCPU(replica)}
	}
	start := read()
	return func() cpuUse {
		end := read()
		return cpuUse{self: end.self - start.self, source: end.source - start.source, replica: end.replica - start.replica}
	}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverCPU reads utime+stime of a server's mariadbd from /proc/PID/stat
// (clock ticks of 1/100 s, the Linux USER_HZ).
func serverCPU(s *testenv.Server) time.Duration {
	pid, ok := s.Process().PID()
	if !ok {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	// Fields after the command name start with the state (field 3); utime
	// and stime are fields 14 and 15.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(u+st) * 10 * time.Millisecond
}
