package livekitwebhook

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// How projects are named: Config.Projects as written, and the set of
// projects it and the configured keys make (see projects.go).

// ProjectNames is Config.Projects: "key: name" lines (YAML, like Keys).
// In a JSON config it may also be an object {"APIxxx": "acme"}.
type ProjectNames string

// UnmarshalJSON takes a string of "key: name" lines or an object.
func (p *ProjectNames) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*p = ProjectNames(s)
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return errors.New(`projects: want "key: name" lines or an object of key -> name`)
	}
	var sb strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		kb, _ := json.Marshal(k) // a JSON string is a YAML scalar
		vb, _ := json.Marshal(m[k])
		fmt.Fprintf(&sb, "%s: %s\n", kb, vb)
	}
	*p = ProjectNames(sb.String())
	return nil
}

// parse returns the key -> name map.
func (p ProjectNames) parse() (map[string]string, error) {
	m := map[string]string{}
	if strings.TrimSpace(string(p)) == "" {
		return m, nil
	}
	if err := yaml.Unmarshal([]byte(p), &m); err != nil {
		return nil, errors.New(`projects: expected "key: name" lines`)
	}
	for k, v := range m {
		if k == "" || v == "" {
			return nil, errors.New("projects: empty key or name")
		}
	}
	return m, nil
}

// projectSet names the projects of the configured keys.
type projectSet struct {
	names map[string]string // key -> project name (Config.Projects)
	all   []string          // every project of a configured key or of Config.Projects, sorted
}

func newProjectSet(names map[string]string, keys map[string]string) projectSet {
	p := projectSet{names: names}
	seen := map[string]bool{}
	for k := range keys {
		seen[p.of(k)] = true
	}
	for _, n := range names {
		seen[n] = true
	}
	p.all = slices.Sorted(maps.Keys(seen))
	return p
}

// of is the project of a signing key: its configured name, else the key;
// "" for no key (a legacy signature, or an event journaled before
// projects).
func (p projectSet) of(key string) string {
	if key == "" {
		return ""
	}
	return cmp.Or(p.names[key], key)
}

// resolve reads a ?project= value: a configured key names its project, any
// other value is a project name.
func (p projectSet) resolve(q string) string {
	if n, ok := p.names[q]; ok {
		return n
	}
	return q
}

// searchOrder is where a room sid is looked for: project q first (when
// given), then every configured project, then the layout before projects.
func (p projectSet) searchOrder(q string) []string {
	order := make([]string, 0, len(p.all)+2)
	if q != "" {
		order = append(order, p.resolve(q))
	}
	for _, name := range slices.Concat(p.all, []string{""}) {
		if !slices.Contains(order, name) {
			order = append(order, name)
		}
	}
	return order
}

// matches tells whether a session of project/apiKey answers ?project=q.
func (p projectSet) matches(q, project, apiKey string) bool {
	return q == "" || project == p.resolve(q) || apiKey == q
}
