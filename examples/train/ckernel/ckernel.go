//go:build cgo

package ckernel

/*
#cgo CFLAGS: -O2
#cgo LDFLAGS: -lm
#include "train.h"
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/gpunode/gpunode/examples/train/model"
)

// Train is model.Train computed by the C kernel: it returns new weights
// and leaves w and s unchanged.
func Train(w model.Weights, s model.Shard, cfg model.Config) (model.Weights, error) {
	d := s.Dim
	if w.Dim() != d || d <= 0 || len(s.X) != s.Rows()*d {
		return model.Weights{}, fmt.Errorf("%w: weights dim %d, shard dim %d", model.ErrShape, w.Dim(), d)
	}
	if cfg.Epochs < 0 || cfg.BatchSize <= 0 || !(cfg.LR > 0) {
		return model.Weights{}, fmt.Errorf("%w: bad config %+v", model.ErrShape, cfg)
	}
	out := model.Weights{W: append([]float64(nil), w.W...)}
	grad := make([]float64, d+1)
	var x, y *C.double
	if s.Rows() > 0 {
		x, y = (*C.double)(unsafe.Pointer(&s.X[0])), (*C.double)(unsafe.Pointer(&s.Y[0]))
	}
	rc := C.gn_train((*C.double)(unsafe.Pointer(&out.W[0])), C.int(d), x, y, C.long(s.Rows()),
		C.int(cfg.Epochs), C.double(cfg.LR), C.int(cfg.BatchSize), (*C.double)(unsafe.Pointer(&grad[0])))
	if rc != 0 {
		return model.Weights{}, fmt.Errorf("%w: kernel refused config %+v", model.ErrShape, cfg)
	}
	return out, nil
}
