//go:build ignore

// Command bcryptprimitives writes a minimal 64-bit Windows DLL named
// bcryptprimitives.dll whose only export, ProcessPrng, is forwarded to
// advapi32.SystemFunction036 (RtlGenRandom). The Go runtime (1.22 and later)
// loads ProcessPrng at start-up and aborts without it; Debian 12's wine 8.0
// does not ship that DLL. Both functions fill a buffer with random bytes and
// return non-zero on success (the runtime reads only the low byte), so the
// forward is exact for the sizes the runtime asks for (< 4 GiB).
//
// The file holds no code: headers and one .edata section with the export
// directory, so the loader resolves the forward. Used by .ci/wintest only
// (docs/windows.md).
//
//	go run .ci/wine/bcryptprimitives.go <out.dll>
package main

import (
	"encoding/binary"
	"fmt"
	"os"
)

const (
	fileAlign = 0x200  // section data starts here in the file
	sectRVA   = 0x1000 // and here in memory
	peOffset  = 0x40   // the PE header follows the 64-byte DOS header
	optSize   = 240    // PE32+ optional header with 16 data directories
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: bcryptprimitives <out.dll>")
		os.Exit(2)
	}
	if err := os.WriteFile(os.Args[1], image(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func image() []byte {
	le := binary.LittleEndian
	edata := exports()

	f := make([]byte, fileAlign+fileAlign) // headers, then one aligned section
	copy(f, "MZ")
	le.PutUint32(f[0x3c:], peOffset)

	pe := f[peOffset:]
	copy(pe, "PE\x00\x00")
	coff := pe[4:]
	le.PutUint16(coff[0:], 0x8664)   // Machine: AMD64
	le.PutUint16(coff[2:], 1)        // NumberOfSections
	le.PutUint16(coff[16:], optSize) // SizeOfOptionalHeader
	le.PutUint16(coff[18:], 0x2022)  // EXECUTABLE_IMAGE | LARGE_ADDRESS_AWARE | DLL

	opt := coff[20:]
	le.PutUint16(opt[0:], 0x20b)                // PE32+
	le.PutUint32(opt[8:], fileAlign)            // SizeOfInitializedData
	le.PutUint32(opt[20:], sectRVA)             // BaseOfCode (no code; AddressOfEntryPoint stays 0)
	le.PutUint64(opt[24:], 0x180000000)         // ImageBase
	le.PutUint32(opt[32:], sectRVA)             // SectionAlignment
	le.PutUint32(opt[36:], fileAlign)           // FileAlignment
	le.PutUint16(opt[40:], 6)                   // MajorOperatingSystemVersion
	le.PutUint16(opt[48:], 6)                   // MajorSubsystemVersion
	le.PutUint32(opt[56:], 2*sectRVA)           // SizeOfImage
	le.PutUint32(opt[60:], fileAlign)           // SizeOfHeaders
	le.PutUint16(opt[68:], 3)                   // Subsystem: console
	le.PutUint64(opt[72:], 0x100000)            // SizeOfStackReserve
	le.PutUint64(opt[80:], 0x1000)              // SizeOfStackCommit
	le.PutUint64(opt[88:], 0x100000)            // SizeOfHeapReserve
	le.PutUint64(opt[96:], 0x1000)              // SizeOfHeapCommit
	le.PutUint32(opt[108:], 16)                 // NumberOfRvaAndSizes
	le.PutUint32(opt[112:], sectRVA)            // export directory RVA
	le.PutUint32(opt[116:], uint32(len(edata))) // and size

	sect := opt[optSize:]
	copy(sect, ".edata")
	le.PutUint32(sect[8:], uint32(len(edata))) // VirtualSize
	le.PutUint32(sect[12:], sectRVA)           // VirtualAddress
	le.PutUint32(sect[16:], fileAlign)         // SizeOfRawData
	le.PutUint32(sect[20:], fileAlign)         // PointerToRawData
	le.PutUint32(sect[36:], 0x40000040)        // INITIALIZED_DATA | MEM_READ

	copy(f[fileAlign:], edata)
	return f
}

// exports is the export directory with one named export whose address
// points inside the directory itself: that makes it a forwarder string.
func exports() []byte {
	le := binary.LittleEndian
	const (
		dllName = "bcryptprimitives.dll\x00"
		fn      = "ProcessPrng\x00"
		target  = "advapi32.SystemFunction036\x00"

		eat      = 40      // export address table: one RVA
		names    = eat + 4 // name pointer table: one RVA
		ordinals = names + 4
		strs     = ordinals + 2
	)
	rva := func(off int) uint32 { return uint32(sectRVA + off) }
	nameOff := strs
	fnOff := nameOff + len(dllName)
	targetOff := fnOff + len(fn)

	d := make([]byte, strs)
	le.PutUint32(d[12:], rva(nameOff)) // Name
	le.PutUint32(d[16:], 1)            // Base (first ordinal)
	le.PutUint32(d[20:], 1)            // NumberOfFunctions
	le.PutUint32(d[24:], 1)            // NumberOfNames
	le.PutUint32(d[28:], rva(eat))
	le.PutUint32(d[32:], rva(names))
	le.PutUint32(d[36:], rva(ordinals))
	le.PutUint32(d[eat:], rva(targetOff)) // forwarder
	le.PutUint32(d[names:], rva(fnOff))
	le.PutUint16(d[ordinals:], 0)
	d = append(d, dllName...)
	d = append(d, fn...)
	return append(d, target...)
}
