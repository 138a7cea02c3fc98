package model

import "math"

// exp and log are ports of the portable algorithms in Go's math package
// (from FreeBSD's e_exp.c and e_log.c) with every product rounded
// explicitly. math.Exp uses assembly on amd64 whose last bit may differ from
// the portable code a wasm build runs; these give the same bits everywhere.

const (
	ln2Hi  = 6.93147180369123816490e-01
	ln2Lo  = 1.90821492927058770002e-10
	log2e  = 1.44269504088896338700e+00
	p1     = 1.66666666666666657415e-01
	p2     = -2.77777777770155933842e-03
	p3     = 6.61375632143793436117e-05
	p4     = -1.65339022054652515390e-06
	p5     = 4.13813679705723846039e-08
	expOvf = 7.09782712893383973096e+02
	expUnf = -7.45133219101941108420e+02
)

func exp(x float64) float64 {
	switch {
	case x != x || x > expOvf:
		if x != x {
			return x
		}
		return math.Inf(1)
	case x < expUnf:
		return 0
	case -3.725290298461914e-09 < x && x < 3.725290298461914e-09:
		return 1 + x
	}
	var k int
	switch {
	case x < 0:
		k = int(float64(log2e*x) - 0.5)
	default:
		k = int(float64(log2e*x) + 0.5)
	}
	hi := x - float64(float64(k)*ln2Hi)
	lo := float64(float64(k) * ln2Lo)
	return expmulti(hi, lo, k)
}

func expmulti(hi, lo float64, k int) float64 {
	r := hi - lo
	t := float64(r * r)
	c := r - float64(t*float64(p1+float64(t*float64(p2+float64(t*float64(p3+float64(t*float64(p4+float64(t*p5)))))))))
	y := 1 - ((lo - float64(float64(r*c)/(2-c))) - hi)
	return math.Ldexp(y, k)
}

const (
	l1 = 6.666666666666735130e-01
	l2 = 3.999999999940941908e-01
	l3 = 2.857142874366239149e-01
	l4 = 2.222219843214978396e-01
	l5 = 1.818357216161805012e-01
	l6 = 1.531383769920937332e-01
	l7 = 1.479819860511658591e-01
)

// log is the natural logarithm for finite x > 0.
func log(x float64) float64 {
	if x != x || x <= 0 || math.IsInf(x, 1) {
		return math.NaN()
	}
	f1, ki := math.Frexp(x)
	if f1 < math.Sqrt2/2 {
		f1 *= 2
		ki--
	}
	f := f1 - 1
	k := float64(ki)
	s := f / (2 + f)
	s2 := float64(s * s)
	s4 := float64(s2 * s2)
	t1 := float64(s2 * float64(l1+float64(s4*float64(l3+float64(s4*float64(l5+float64(s4*l7)))))))
	t2 := float64(s4 * float64(l2+float64(s4*float64(l4+float64(s4*l6)))))
	R := t1 + t2
	hfsq := float64(0.5 * f * f)
	return float64(k*ln2Hi) - ((hfsq - (float64(s*(hfsq+R)) + float64(k*ln2Lo))) - f)
}
