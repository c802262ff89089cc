/*
 * LD_PRELOAD shim: tells oneMKL (linked into libtorch_cpu) that it runs on an
 * Intel CPU, so it dispatches the kernels it uses there. MKL picks its FFT
 * kernels, and with them the float32 round-off, from this answer; the seed
 * reference (../shared/reference) was computed on MKL's Intel code path.
 * Used by tests/test_seed_reference.py on non-Intel x86 CPUs.
 */
int mkl_serv_intel_cpu_true(void) { return 1; }
