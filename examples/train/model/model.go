// Package model is the training workload of the examples: logistic
// regression on a deterministic synthetic data set, trained in segments
// (each segment runs SGD over its shard starting from given weights) and
// combined by averaging, i.e. asynchronous data-parallel training.
//
// The math is plain float64 with every product rounded before it is added
// (an explicit float64 conversion, which the Go spec says prevents fused
// multiply-add) and its own exp, so a native build and a GOOS=wasip1 build
// produce byte-identical weights. Nothing here reads the clock or a global
// random source.
package model

import (
	"errors"
	"fmt"
)

// ErrShape: weights and data disagree on the feature dimension, or a
// parameter is out of range.
var ErrShape = errors.New("model: shape mismatch")

// Weights are a linear model: W[0..dim-1] feature weights, W[dim] the bias.
type Weights struct {
	W []float64
}

// Dim is the feature dimension.
func (w Weights) Dim() int { return len(w.W) - 1 }

// Zero returns zero weights for dim features.
func Zero(dim int) Weights { return Weights{W: make([]float64, dim+1)} }

// Shard is a block of labelled examples: X is row-major n x dim, Y holds
// 0 or 1.
type Shard struct {
	Dim int
	X   []float64
	Y   []float64
}

// Rows is the number of examples.
func (s Shard) Rows() int { return len(s.Y) }

// rng is splitmix64: tiny, fast and identical on every platform.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// uniform returns a float in [-1, 1) built from 53 random bits (exact).
func (r *rng) uniform() float64 {
	return float64(r.next()>>11)/(1<<52) - 1
}

// Task is a synthetic classification problem: a hidden linear separator
// with label noise, from which any shard can be generated on its own.
type Task struct {
	Seed   uint64
	Dim    int
	hidden []float64
}

// NewTask derives the hidden separator from seed.
func NewTask(seed uint64, dim int) (Task, error) {
	if dim <= 0 || dim > MaxDim {
		return Task{}, fmt.Errorf("%w: dim %d", ErrShape, dim)
	}
	r := rng{s: seed}
	w := make([]float64, dim+1)
	for i := range w {
		w[i] = r.uniform() * 2
	}
	return Task{Seed: seed, Dim: dim, hidden: w}, nil
}

// Shard generates rows examples for shard index. Index -1 is the held-out
// evaluation split. Shards are independent: generating shard 3 does not
// need shards 0..2.
func (t Task) Shard(index, rows int) (Shard, error) {
	if rows < 0 || rows > MaxRows {
		return Shard{}, fmt.Errorf("%w: rows %d", ErrShape, rows)
	}
	r := rng{s: t.Seed ^ (uint64(int64(index)+2) * 0xd1b54a32d192ed03)}
	s := Shard{Dim: t.Dim, X: make([]float64, rows*t.Dim), Y: make([]float64, rows)}
	for i := range rows {
		x := s.X[i*t.Dim : (i+1)*t.Dim]
		z := t.hidden[t.Dim]
		for j := range x {
			x[j] = r.uniform()
			z += float64(t.hidden[j] * x[j])
		}
		z += float64(0.3 * r.uniform()) // label noise
		if z > 0 {
			s.Y[i] = 1
		}
	}
	return s, nil
}

// Config holds the training hyper-parameters of one segment.
type Config struct {
	Epochs    int     // passes over the shard
	LR        float64 // learning rate
	BatchSize int     // examples per SGD step
}

// DefaultConfig is what the examples use.
var DefaultConfig = Config{Epochs: 5, LR: 0.5, BatchSize: 32}

// Train runs mini-batch SGD on the logistic loss over shard, in row order,
// starting from w (which it does not modify), and returns the new weights.
func Train(w Weights, s Shard, cfg Config) (Weights, error) {
	if w.Dim() != s.Dim || s.Dim <= 0 || len(s.X) != s.Rows()*s.Dim {
		return Weights{}, fmt.Errorf("%w: weights dim %d, shard dim %d", ErrShape, w.Dim(), s.Dim)
	}
	if cfg.Epochs < 0 || cfg.BatchSize <= 0 || !(cfg.LR > 0) {
		return Weights{}, fmt.Errorf("%w: bad config %+v", ErrShape, cfg)
	}
	d := s.Dim
	out := Weights{W: append([]float64(nil), w.W...)}
	grad := make([]float64, d+1)
	n := s.Rows()
	ow, g := out.W[:d], grad[:d]
	for range cfg.Epochs {
		for start := 0; start < n; start += cfg.BatchSize {
			end := min(start+cfg.BatchSize, n)
			clear(grad)
			var gb float64
			for i := start; i < end; i++ {
				x := s.X[i*d : (i+1)*d]
				x = x[:len(ow)] // one bounds check here, none in the loops
				e := sigmoid(dot(out.W, x)) - s.Y[i]
				for j, xj := range x {
					g[j] += float64(e * xj)
				}
				gb += e
			}
			step := cfg.LR / float64(end-start)
			for j := range ow {
				ow[j] -= float64(step * g[j])
			}
			out.W[d] -= float64(step * gb)
		}
	}
	return out, nil
}

// Average is the element-wise mean of ws, summed in the given order.
func Average(ws []Weights) (Weights, error) {
	if len(ws) == 0 {
		return Weights{}, fmt.Errorf("%w: nothing to average", ErrShape)
	}
	out := Weights{W: make([]float64, len(ws[0].W))}
	for _, w := range ws {
		if len(w.W) != len(out.W) {
			return Weights{}, fmt.Errorf("%w: averaging dims %d and %d", ErrShape, w.Dim(), out.Dim())
		}
		for j, v := range w.W {
			out.W[j] += v
		}
	}
	k := float64(len(ws))
	for j := range out.W {
		out.W[j] /= k
	}
	return out, nil
}

// Evaluate returns the accuracy of w on s and the mean logistic loss.
func Evaluate(w Weights, s Shard) (accuracy, loss float64, err error) {
	if w.Dim() != s.Dim || len(s.X) != s.Rows()*s.Dim {
		return 0, 0, fmt.Errorf("%w: weights dim %d, shard dim %d", ErrShape, w.Dim(), s.Dim)
	}
	if s.Rows() == 0 {
		return 0, 0, nil
	}
	correct := 0
	for i := range s.Rows() {
		p := sigmoid(dot(w.W, s.X[i*s.Dim:(i+1)*s.Dim]))
		if (p >= 0.5) == (s.Y[i] == 1) {
			correct++
		}
		q := p
		if s.Y[i] == 0 {
			q = 1 - p
		}
		loss -= log(max(q, 1e-300))
	}
	n := float64(s.Rows())
	return float64(correct) / n, loss / n, nil
}

// dot is w[:len(x)]·x + bias, with the bias in w[len(x)].
func dot(w, x []float64) float64 {
	z := w[len(x)]
	w = w[:len(x)]
	for j, xj := range x {
		z += float64(w[j] * xj)
	}
	return z
}

func sigmoid(z float64) float64 {
	switch {
	case z > 40:
		return 1
	case z < -40:
		return 0
	}
	return 1 / (1 + exp(-z))
}
