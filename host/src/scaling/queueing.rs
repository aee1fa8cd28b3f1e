//! Queueing formulas the deadline policy sizes with: Erlang C (M/M/m) and Whitt's GI/G/m.
//!
//! Notation follows the reference notes: `m` servers (instances × concurrency), arrival
//! rate λ, mean service time `E[S] = 1/μ`, offered load a = λ/μ, utilisation ρ = a/m, and the
//! squared coefficients of variation c_a² (inter-arrival) and c_s² (service).
//!
//! For general service times the mean wait is Whitt's (1993) refined approximation
//! `E[W_q] ≈ φ · (c_a² + c_s²)/2 · E[W_q](M/M/m)`. Waiting-time percentiles keep Erlang C's
//! shape, `P(W_q > t) = C · exp(−t / w)`, with the conditional mean wait `w = E[W_q] / C`
//! taken from the approximation; for M/M/m this is exact.

/// An m-server queue fed at rate λ, with the moments the formulas need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Station {
    /// Parallel servers (instances × concurrency).
    pub servers: u32,
    /// Arrivals per second.
    pub arrival_rate: f64,
    /// Mean service time, seconds.
    pub service_mean: f64,
    /// Squared coefficient of variation of inter-arrival times (1 for Poisson).
    pub arrival_scv: f64,
    /// Squared coefficient of variation of service times (1 for exponential).
    pub service_scv: f64,
}

impl Station {
    /// An M/M/m station.
    pub fn mmm(servers: u32, arrival_rate: f64, service_mean: f64) -> Self {
        Station {
            servers,
            arrival_rate,
            service_mean,
            arrival_scv: 1.0,
            service_scv: 1.0,
        }
    }

    /// Offered load `a = λ·E[S]`, in Erlangs.
    pub fn offered_load(&self) -> f64 {
        self.arrival_rate * self.service_mean
    }

    /// Utilisation ρ = a / m.
    pub fn utilisation(&self) -> f64 {
        if self.servers == 0 {
            return f64::INFINITY;
        }
        self.offered_load() / f64::from(self.servers)
    }

    /// Whether the queue is stable (ρ < 1).
    pub fn is_stable(&self) -> bool {
        self.utilisation() < 1.0
    }

    /// Erlang C: the probability that an arrival waits (1 when unstable).
    pub fn wait_probability(&self) -> f64 {
        erlang_c(self.servers, self.offered_load())
    }

    /// Mean wait in M/M/m: C / (mμ − λ); infinite when unstable.
    pub fn mmm_mean_wait(&self) -> f64 {
        if !self.is_stable() {
            return f64::INFINITY;
        }
        if self.arrival_rate <= 0.0 {
            return 0.0;
        }
        let drain = f64::from(self.servers) / self.service_mean - self.arrival_rate;
        self.wait_probability() / drain
    }

    /// Whitt's φ correction for GI/G/m (1 for M/M/m).
    pub fn whitt_phi(&self) -> f64 {
        whitt_phi(
            self.utilisation(),
            self.arrival_scv,
            self.service_scv,
            self.servers,
        )
    }

    /// Mean wait by Whitt's GI/G/m approximation (exact for M/M/m and M/G/1).
    pub fn mean_wait(&self) -> f64 {
        let mm = self.mmm_mean_wait();
        if !mm.is_finite() || mm == 0.0 {
            return mm;
        }
        self.whitt_phi() * (self.arrival_scv + self.service_scv) / 2.0 * mm
    }

    /// P(W_q > t): Erlang C's exponential tail with Whitt's mean.
    pub fn wait_tail(&self, t: f64) -> f64 {
        let c = self.wait_probability();
        let mean = self.mean_wait();
        if !mean.is_finite() {
            return 1.0;
        }
        if c <= 0.0 || mean <= 0.0 {
            return 0.0;
        }
        let conditional = mean / c;
        (c * (-t.max(0.0) / conditional).exp()).min(1.0)
    }

    /// The waiting time that a fraction `p` (0..1) of arrivals stay within.
    pub fn wait_quantile(&self, p: f64) -> f64 {
        let c = self.wait_probability();
        let mean = self.mean_wait();
        if !mean.is_finite() {
            return f64::INFINITY;
        }
        let beyond = 1.0 - p;
        if c <= beyond || mean <= 0.0 {
            return 0.0;
        }
        (mean / c) * (c / beyond).ln()
    }
}

impl Station {
    /// P(W_q + S > d) with lognormal service times of this mean and `service_stddev`:
    /// `P(S > d) + C · ∫₀^d f_S(s) · exp(−(d − s)/w) ds`, with `w = E[W_q] / C` (the wait
    /// of those who wait is taken as exponential, exact for M/M/m).
    pub fn response_tail_lognormal(&self, d: f64, service_stddev: f64) -> f64 {
        let c = self.wait_probability();
        let mean = self.mean_wait();
        let (mu, sigma) = lognormal_params(self.service_mean, service_stddev);
        let service_tail = |x: f64| {
            if x <= 0.0 {
                1.0
            } else if sigma == 0.0 {
                if self.service_mean > x { 1.0 } else { 0.0 }
            } else {
                normal_tail((x.ln() - mu) / sigma)
            }
        };
        if !mean.is_finite() {
            return 1.0;
        }
        let beyond = service_tail(d);
        if c <= 0.0 || mean <= 0.0 || d <= 0.0 {
            return beyond;
        }
        let w = mean / c;
        if sigma == 0.0 {
            let waited = if self.service_mean < d {
                (-(d - self.service_mean) / w).exp()
            } else {
                0.0
            };
            return (beyond + c * waited).min(1.0);
        }
        // Integrate over z = (ln s − μ)/σ up to ln d with Simpson's rule; beyond ±8σ the
        // density is negligible.
        let top = ((d.ln() - mu) / sigma).min(8.0);
        let bottom = -8.0;
        if top <= bottom {
            return beyond;
        }
        let steps = 96;
        let h = (top - bottom) / f64::from(steps);
        let f = |z: f64| {
            let s = (mu + sigma * z).exp();
            let density = (-z * z / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
            density * (-(d - s) / w).exp()
        };
        let mut sum = f(bottom) + f(top);
        for i in 1..steps {
            let weight = if i % 2 == 1 { 4.0 } else { 2.0 };
            sum += weight * f(bottom + h * f64::from(i));
        }
        (beyond + c * sum * h / 3.0).min(1.0)
    }
}

/// P(Z > z) for a standard normal Z (Abramowitz–Stegun 7.1.26 via erfc, |ε| < 1.5e-7).
pub fn normal_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    if x >= 0.0 {
        erfc / 2.0
    } else {
        1.0 - erfc / 2.0
    }
}

/// Erlang B by the stable recursion B(k) = a·B(k−1) / (k + a·B(k−1)).
pub fn erlang_b(servers: u32, load: f64) -> f64 {
    let mut b = 1.0;
    for k in 1..=servers {
        b = load * b / (f64::from(k) + load * b);
    }
    b
}

/// Erlang C: C(m, a) = m·B / (m − a·(1 − B)); 1 when a ≥ m.
pub fn erlang_c(servers: u32, load: f64) -> f64 {
    let m = f64::from(servers);
    if load <= 0.0 {
        return 0.0;
    }
    if load >= m {
        return 1.0;
    }
    let b = erlang_b(servers, load);
    (m * b / (m - load * (1.0 - b))).clamp(0.0, 1.0)
}

/// Whitt's (1993) φ(ρ, c_a², c_s², m) (eq. 2.25).
pub fn whitt_phi(rho: f64, ca2: f64, cs2: f64, servers: u32) -> f64 {
    let m = f64::from(servers.max(1));
    if rho <= 0.0 {
        return 1.0;
    }
    let gamma = ((1.0 - rho) * (m - 1.0) * ((4.0 + 5.0 * m).sqrt() - 2.0) / (16.0 * m * rho))
        .clamp(0.0, 0.24);
    let phi1 = 1.0 + gamma;
    let phi2 = 1.0 - 4.0 * gamma;
    let phi3 = phi2 * (-2.0 * (1.0 - rho) / (3.0 * rho)).exp();
    let phi4 = ((phi1 + phi3) / 2.0).min(1.0);
    let c2 = (ca2 + cs2) / 2.0;
    let psi = if c2 >= 1.0 {
        1.0
    } else {
        phi4.powf(2.0 * (1.0 - c2))
    };
    // KSL also maps c_a² = 0 to φ3 alone; the general form below is what the reference
    // table's D/M/5 row (0.218) uses, so that special case is left out.
    if ca2 == cs2 {
        psi
    } else if ca2 > cs2 {
        let d = 4.0 * ca2 - 3.0 * cs2;
        4.0 * (ca2 - cs2) / d * phi1 + cs2 / d * psi
    } else {
        let d = 2.0 * ca2 + 2.0 * cs2;
        (cs2 - ca2) / d * phi3 + (cs2 + 3.0 * ca2) / d * psi
    }
}

/// The standard normal quantile Φ⁻¹(p) (Acklam's rational approximation, |ε| < 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let low = 0.024_25;
    if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}

/// The `p` quantile of a lognormal distribution with the given mean and standard deviation.
pub fn lognormal_quantile(mean: f64, stddev: f64, p: f64) -> f64 {
    if mean <= 0.0 {
        return 0.0;
    }
    let (mu, sigma) = lognormal_params(mean, stddev);
    (mu + sigma * normal_quantile(p)).exp()
}

/// (μ, σ) of the underlying normal for a lognormal with this mean and standard deviation.
pub fn lognormal_params(mean: f64, stddev: f64) -> (f64, f64) {
    let cv2 = (stddev / mean).powi(2);
    let sigma2 = (1.0 + cv2).ln();
    (mean.ln() - sigma2 / 2.0, sigma2.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "{actual} is not within {tolerance} of {expected}"
        );
    }

    #[test]
    fn mm1_and_mm2_closed_forms() {
        let mm1 = Station::mmm(1, 0.5, 1.0);
        close(mm1.wait_probability(), 0.5, 1e-12);
        close(mm1.mmm_mean_wait(), 1.0, 1e-12);
        let mm2 = Station::mmm(2, 1.0, 1.0);
        close(mm2.wait_probability(), 1.0 / 3.0, 1e-12);
        close(mm2.mmm_mean_wait(), 1.0 / 3.0, 1e-12);
    }

    #[test]
    fn erlang_c_two_erlangs_three_servers() {
        close(erlang_c(3, 2.0), 4.0 / 9.0, 1e-12);
        close(Station::mmm(3, 2.0, 1.0).mmm_mean_wait(), 4.0 / 9.0, 1e-12);
    }

    #[test]
    fn erlang_c_table_for_ten_erlangs() {
        let table = [
            (11, 0.6821, 0.6821),
            (12, 0.4494, 0.2247),
            (13, 0.2853, 0.0951),
            (14, 0.1741, 0.0435),
            (15, 0.1020, 0.0204),
            (16, 0.0573, 0.0096),
            (17, 0.0309, 0.0044),
        ];
        for (m, c, wq) in table {
            let s = Station::mmm(m, 10.0, 1.0);
            close(s.wait_probability(), c, 5e-5);
            close(s.mmm_mean_wait(), wq, 5e-5);
        }
    }

    #[test]
    fn call_centre_example() {
        // 360 calls per half hour, 4-minute calls, 55 agents, 15 s target.
        let s = Station::mmm(55, 360.0 / 1800.0, 240.0);
        close(s.offered_load(), 48.0, 1e-9);
        close(s.wait_probability(), 0.2387, 5e-5);
        close(s.mmm_mean_wait(), 8.18, 5e-3);
        close(1.0 - s.wait_tail(15.0), 0.846, 5e-4);
    }

    #[test]
    fn ksl_demo_is_mm1() {
        // GGcWhittApproximation(6.0, 3.0): M/M/1 at ρ = 0.5 with E[S] = 3.
        let s = Station::mmm(1, 1.0 / 6.0, 3.0);
        close(s.mean_wait(), 3.0, 1e-9);
    }

    #[test]
    fn whitt_matches_the_reference_table() {
        // (m, ca², cs², ρ, M/M/m W_q, Allen–Cunneen, Whitt), μ = 1.
        let rows = [
            (1, 1.0, 0.0, 0.8, 4.000, 2.000, 2.000),
            (2, 1.0, 0.0, 0.8, 1.778, 0.889, 0.901),
            (3, 0.5, 0.5, 0.8, 1.079, 0.539, 0.482),
            (5, 1.0, 0.0, 0.8, 0.554, 0.277, 0.289),
            (5, 0.0, 1.0, 0.8, 0.554, 0.277, 0.218),
            (10, 1.0, 4.0, 0.8, 0.205, 0.512, 0.449),
            (10, 1.0, 0.25, 0.9, 0.669, 0.418, 0.429),
        ];
        for (m, ca2, cs2, rho, mm, ac, whitt) in rows {
            let s = Station {
                servers: m,
                arrival_rate: rho * f64::from(m),
                service_mean: 1.0,
                arrival_scv: ca2,
                service_scv: cs2,
            };
            close(s.mmm_mean_wait(), mm, 5e-4);
            // The table rounds to three places, and Allen–Cunneen multiplies the rounding.
            close((ca2 + cs2) / 2.0 * s.mmm_mean_wait(), ac, 1e-3);
            close(s.mean_wait(), whitt, 5e-4);
        }
    }

    #[test]
    fn tail_and_quantile_agree() {
        let s = Station::mmm(12, 10.0, 1.0);
        let t = s.wait_quantile(0.99);
        close(s.wait_tail(t), 0.01, 1e-12);
        // Exact M/M/m tail: C·exp(−(mμ − λ)t).
        close(
            s.wait_tail(0.5),
            0.4494 * (-(12.0 - 10.0) * 0.5f64).exp(),
            1e-4,
        );
        assert_eq!(Station::mmm(20, 1.0, 1.0).wait_quantile(0.99), 0.0);
        assert!(Station::mmm(2, 3.0, 1.0).wait_quantile(0.99).is_infinite());
    }

    #[test]
    fn response_tail() {
        // No queueing: only processing can be late.
        let idle = Station::mmm(50, 0.001, 2.0);
        close(
            idle.response_tail_lognormal(5.0, 1.0),
            normal_tail((5f64.ln() - lognormal_params(2.0, 1.0).0) / lognormal_params(2.0, 1.0).1),
            1e-6,
        );
        // Nearly deterministic processing: C·exp(−(d − P)/w).
        let s = Station {
            servers: 12,
            arrival_rate: 10.0,
            service_mean: 1.0,
            arrival_scv: 1.0,
            service_scv: 1.0,
        };
        let w = s.mean_wait() / s.wait_probability();
        let expected = s.wait_probability() * (-(3.0 - 1.0) / w).exp();
        close(s.response_tail_lognormal(3.0, 1e-4), expected, 1e-4);
        close(s.response_tail_lognormal(3.0, 0.0), expected, 1e-12);
        // More spread, more misses; a later deadline, fewer.
        assert!(s.response_tail_lognormal(3.0, 0.5) > s.response_tail_lognormal(3.0, 1e-4));
        assert!(s.response_tail_lognormal(4.0, 0.5) < s.response_tail_lognormal(3.0, 0.5));
        close(normal_tail(2.326_347_874), 0.01, 2e-7);
        close(normal_tail(-1.0), 0.841_344_746, 2e-7);
    }

    #[test]
    fn normal_and_lognormal_quantiles() {
        close(normal_quantile(0.99), 2.326_347_874, 1e-8);
        close(normal_quantile(0.01), -2.326_347_874, 1e-8);
        close(normal_quantile(0.5), 0.0, 1e-12);
        close(normal_quantile(0.32), -0.467_698_799, 1e-8);
        let median = lognormal_quantile(2.0, 1.0, 0.5);
        let (mu, _) = lognormal_params(2.0, 1.0);
        close(median, mu.exp(), 1e-12);
    }
}
