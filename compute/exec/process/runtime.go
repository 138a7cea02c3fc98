package process

import "strings"

// Template placeholders in a Runtime's Command.
const (
	PlaceholderInput  = "{in}"   // absolute input directory
	PlaceholderOutput = "{out}"  // absolute output directory
	PlaceholderWork   = "{work}" // absolute work directory
	PlaceholderArgs   = "{args}" // the spec's args, one element each
)

// Runtime is one allowlisted command. Command is an argv template; an
// element equal to "{args}" expands to the spec's args (if absent, the args
// are appended), and {in}, {out}, {work} are replaced inside any element.
type Runtime struct {
	Name        string            `json:"name"`
	Command     []string          `json:"command"`
	Env         map[string]string `json:"env,omitempty"`
	Description string            `json:"description,omitempty"`
}

// Expand builds the argv for rt with the given directories and args.
func Expand(rt Runtime, in, out, work string, args []string) []string {
	var argv []string
	sawArgs := false
	r := strings.NewReplacer(PlaceholderInput, in, PlaceholderOutput, out, PlaceholderWork, work)
	for _, el := range rt.Command {
		if el == PlaceholderArgs {
			argv = append(argv, args...)
			sawArgs = true
			continue
		}
		argv = append(argv, r.Replace(el))
	}
	if !sawArgs {
		argv = append(argv, args...)
	}
	return argv
}
