package release

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"runtime"
	"strings"
)

// hostMachine maps GOARCH to the ELF machine this host runs.
var hostMachine = map[string]elf.Machine{
	"amd64": elf.EM_X86_64, "386": elf.EM_386, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM,
	"riscv64": elf.EM_RISCV, "ppc64le": elf.EM_PPC64, "ppc64": elf.EM_PPC64, "s390x": elf.EM_S390,
	"loong64": elf.EM_LOONGARCH, "mips64le": elf.EM_MIPS, "mipsle": elf.EM_MIPS,
}

// CheckCommand verifies that command (a path relative to the release root
// dir, resolved without leaving it) is something this host can run: an
// executable regular file that is either an ELF binary for this host's
// architecture or a script with a "#!" line whose interpreter exists.
// Anything else is refused with an error wrapping ErrInvalidRelease that
// says what was found.
func CheckCommand(dir, command string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("open release root: %w", err)
	}
	defer root.Close()
	f, err := root.Open(command)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: command %s is not in the release", ErrInvalidRelease, command)
	}
	if err != nil {
		return fmt.Errorf("%w: command %s: %w", ErrInvalidRelease, command, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", command, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%w: command %s is not an executable file (mode %s)", ErrInvalidRelease, command, fi.Mode())
	}
	return checkFormat(f, command)
}

func checkFormat(f *os.File, command string) error {
	head := make([]byte, 512)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read %s: %w", command, err)
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte(elf.ELFMAG)):
		return checkELF(f, command)
	case bytes.HasPrefix(head, []byte("#!")):
		return checkInterpreter(head, command)
	}
	return fmt.Errorf("%w: command %s is neither an ELF binary nor a #! script (found %s)",
		ErrInvalidRelease, command, http.DetectContentType(head))
}

func checkELF(f *os.File, command string) error {
	ef, err := elf.NewFile(f)
	if err != nil {
		return fmt.Errorf("%w: command %s is a broken ELF file: %w", ErrInvalidRelease, command, err)
	}
	want, known := hostMachine[runtime.GOARCH]
	if known && ef.Machine != want {
		return fmt.Errorf("%w: command %s is an ELF binary for %s; this host (%s) needs %s",
			ErrInvalidRelease, command, ef.Machine, runtime.GOARCH, want)
	}
	if ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
		return fmt.Errorf("%w: command %s is an ELF %s, not an executable", ErrInvalidRelease, command, ef.Type)
	}
	return nil
}

func checkInterpreter(head []byte, command string) error {
	line, _, _ := bytes.Cut(head[2:], []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) == 0 {
		return fmt.Errorf("%w: command %s has an empty #! line", ErrInvalidRelease, command)
	}
	if _, err := os.Stat(fields[0]); err != nil {
		return fmt.Errorf("%w: command %s needs interpreter %s, which this host lacks", ErrInvalidRelease, command, fields[0])
	}
	return nil
}
