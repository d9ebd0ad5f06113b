package config

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// FileMode is a file's permission bits, written in octal as chmod takes
// them: 640, 0640 and 0o640 are all rw-r-----. (Plain YAML would read 640
// as the decimal number 640, which is -w----r-T.)
type FileMode os.FileMode

// ParseFileMode parses a FileMode.
func ParseFileMode(s string) (FileMode, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimPrefix(strings.TrimPrefix(t, "0o"), "0O")
	n, err := strconv.ParseUint(t, 8, 32)
	if err != nil || t == "" || n > 0o777 {
		return 0, fmt.Errorf("%q is not a file mode in octal, such as 644 or 0600", s)
	}
	return FileMode(n), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (m *FileMode) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a file mode in octal, such as 644 or 0600")
	}
	v, err := ParseFileMode(n.Value)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

func (m FileMode) String() string { return fmt.Sprintf("0%03o", uint32(m)) }
