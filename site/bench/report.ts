// How a benchmark spec hands its figures to BenchmarkDashboard (integration-tests/site_bench_test.go):
// one line "BENCH <unit> <value>" each on standard output, which the Go side reports with
// b.ReportMetric, so `make bench` prints them in go test -bench's format.

/** report prints one figure. */
export function report(unit: string, value: number): void {
  if (!/^[A-Za-z0-9_/%.-]+$/.test(unit) || !Number.isFinite(value)) throw new Error(`bad figure ${unit} ${value}`);
  console.log(`BENCH ${unit} ${value}`);
}

/** median of values (the lower middle one of an even count). */
export function median(values: number[]): number {
  const v = [...values].sort((a, b) => a - b);
  return v[Math.floor((v.length - 1) / 2)]!;
}
