package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Settings come from three places that always agree, because they share one
// name: a flag --NAME, an environment variable GPUNODE_NAME (upper case, '-'
// as '_') and a key NAME in <home>/config.toml. A flag on the command line
// wins over the environment, which wins over the config file, which wins over
// the built-in default. Lists are TOML arrays in the file and comma-separated
// in flags and the environment.

const (
	configFile = "config.toml"
	envPrefix  = "GPUNODE_"
)

// defaultHome is where the data directory lives when neither --home nor
// GPUNODE_HOME says otherwise.
func defaultHome() string {
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".gpunode")
	}
	return ".gpunode"
}

// envName is the environment variable that carries flag name.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// resolveHome applies the environment to --home before the config file is
// read, since the file's location depends on it.
func resolveHome(cmd *cobra.Command) (string, error) {
	f := cmd.Flags().Lookup("home")
	if f == nil {
		return defaultHome(), nil
	}
	if !f.Changed {
		if v, ok := os.LookupEnv(envName("home")); ok {
			if err := f.Value.Set(v); err != nil {
				return "", err
			}
		}
	}
	home := f.Value.String()
	if home == "" {
		return "", errors.New("empty --home")
	}
	return filepath.Abs(home)
}

// applySettings fills every flag of cmd that was not given on the command
// line from the environment, then from the config file in home. Unknown keys
// in the file are an error, so a typo never silently does nothing.
func applySettings(cmd *cobra.Command, home string) error {
	file, err := readConfigFile(filepath.Join(home, configFile))
	if err != nil {
		return err
	}
	flags := cmd.Flags()
	for key := range file {
		if flags.Lookup(key) == nil && !knownElsewhere(cmd, key) {
			return fmt.Errorf("config %s: unknown setting %q", filepath.Join(home, configFile), key)
		}
	}
	var errs []error
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "home" || f.Name == "help" {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if err := setFlag(f, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(f.Name), err))
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			s, err := tomlToFlag(v)
			if err == nil {
				err = setFlag(f, s)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("config %s: %s: %w", configFile, f.Name, err))
			}
		}
	})
	return errors.Join(errs...)
}

// knownElsewhere reports whether key is a setting of another command (the
// file is shared by all commands, each taking the keys it knows).
func knownElsewhere(cmd *cobra.Command, key string) bool {
	_, ok := allSettings(cmd.Root())[key]
	return ok
}

func allSettings(root *cobra.Command) map[string]bool {
	out := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { out[f.Name] = true })
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) { out[f.Name] = true })
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return out
}

func setFlag(f *pflag.Flag, v string) error {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		if v == "" {
			return sv.Replace(nil)
		}
		return sv.Replace(strings.Split(v, ","))
	}
	return f.Value.Set(v)
}

func tomlToFlag(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool, int64, float64:
		return fmt.Sprint(x), nil
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return "", fmt.Errorf("list items must be strings, got %T", e)
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	default:
		return "", fmt.Errorf("unsupported value of type %T", v)
	}
}

func readConfigFile(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]any{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var m map[string]any
	if err := toml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return m, nil
}

// writeDefaultConfig writes a config file listing every setting of the run
// command with its default, with the given values set. It refuses to
// overwrite an existing file.
func writeDefaultConfig(path string, run *cobra.Command, set map[string]string) error {
	var b strings.Builder
	b.WriteString("# gpunode configuration. Every key is also a flag of `gpunode run` (--KEY)\n")
	b.WriteString("# and an environment variable (GPUNODE_KEY, upper case, '-' as '_').\n")
	b.WriteString("# Precedence: command-line flag > environment > this file > default.\n\n")
	var names []string
	run.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name != "home" && f.Name != "help" {
			names = append(names, f.Name)
		}
	})
	sort.Strings(names)
	for _, n := range names {
		f := run.Flags().Lookup(n)
		fmt.Fprintf(&b, "# %s\n", f.Usage)
		if v, ok := set[n]; ok {
			fmt.Fprintf(&b, "%s = %s\n\n", n, tomlValue(f, v))
		} else {
			fmt.Fprintf(&b, "# %s = %s\n\n", n, tomlValue(f, f.DefValue))
		}
	}
	fd, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if _, err := fd.WriteString(b.String()); err != nil {
		fd.Close()
		return fmt.Errorf("write config: %w", err)
	}
	return fd.Close()
}

func tomlValue(f *pflag.Flag, v string) string {
	switch f.Value.Type() {
	case "bool", "int", "int64", "uint64", "float64":
		return v
	case "stringSlice", "stringArray":
		v = strings.TrimSuffix(strings.TrimPrefix(v, "["), "]")
		if v == "" {
			return "[]"
		}
		parts := strings.Split(v, ",")
		for i, p := range parts {
			parts[i] = fmt.Sprintf("%q", p)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	default:
		return fmt.Sprintf("%q", v)
	}
}
