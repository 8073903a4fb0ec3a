//! Scalar and range resources (Mesos's cpus, mem, disk and ports).

use serde::{Deserialize, Serialize};

/// An inclusive range of ports, as Mesos writes `[31000-32000]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub begin: u16,
    pub end: u16,
}

impl PortRange {
    pub fn len(&self) -> u32 {
        u32::from(self.end) - u32::from(self.begin) + 1
    }

    pub fn is_empty(&self) -> bool {
        self.end < self.begin
    }
}

/// Resources of an agent or a task. Memory and disk are in MiB, as in Mesos and Marathon.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    pub cpus: f64,
    pub mem: f64,
    #[serde(default)]
    pub disk: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortRange>,
}

/// Tolerance for floating-point resource arithmetic (Mesos keeps 3 decimal places).
const EPSILON: f64 = 0.000_5;

impl Resources {
    /// Whether `need` fits in `self` (scalars only; ports are checked separately).
    pub fn fits(&self, need: &Resources) -> bool {
        need.cpus <= self.cpus + EPSILON && need.mem <= self.mem + EPSILON && need.disk <= self.disk + EPSILON
    }

    pub fn add(&mut self, other: &Resources) {
        self.cpus += other.cpus;
        self.mem += other.mem;
        self.disk += other.disk;
    }

    pub fn subtract(&mut self, other: &Resources) {
        self.cpus = (self.cpus - other.cpus).max(0.0);
        self.mem = (self.mem - other.mem).max(0.0);
        self.disk = (self.disk - other.disk).max(0.0);
    }

    /// Checks that every figure is finite and non-negative, naming the bad field.
    pub fn validate(&self, what: &str) -> Result<(), String> {
        for (name, value) in [("cpus", self.cpus), ("mem", self.mem), ("disk", self.disk)] {
            if !value.is_finite() || value < 0.0 {
                return Err(format!("{what}.{name} must be a non-negative number, got {value}"));
            }
        }
        for r in &self.ports {
            if r.is_empty() || r.begin == 0 {
                return Err(format!("{what}.ports: range {}-{} is invalid", r.begin, r.end));
            }
        }
        Ok(())
    }

    /// Whether `port` lies in one of the ranges.
    pub fn has_port(&self, port: u16) -> bool {
        self.ports.iter().any(|r| r.begin <= port && port <= r.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_and_arithmetic() {
        let mut total = Resources { cpus: 2.0, mem: 1024.0, disk: 100.0, ports: vec![] };
        let task = Resources { cpus: 0.1, mem: 128.0, disk: 0.0, ports: vec![] };
        assert!(total.fits(&task));
        for _ in 0..20 {
            total.subtract(&task);
        }
        assert!(total.cpus.abs() < 1e-9, "{}", total.cpus);
        assert!(!total.fits(&task));
        assert!(Resources { cpus: f64::NAN, ..Default::default() }.validate("task").unwrap_err().contains("task.cpus"));
        assert!(Resources { mem: -1.0, ..Default::default() }.validate("task").unwrap_err().contains("task.mem"));
    }
}

/// `ranges` without the given ports (which need not be sorted or inside the ranges).
pub fn subtract_ports(ranges: &[PortRange], ports: &[u16]) -> Vec<PortRange> {
    let mut taken: Vec<u16> = ports.to_vec();
    taken.sort_unstable();
    taken.dedup();
    let mut out = Vec::new();
    for range in ranges.iter().filter(|r| !r.is_empty()) {
        let mut begin = u32::from(range.begin);
        let end = u32::from(range.end);
        for &port in taken.iter().filter(|p| (range.begin..=range.end).contains(p)) {
            let port = u32::from(port);
            if port > begin {
                out.push(PortRange { begin: begin as u16, end: (port - 1) as u16 });
            }
            begin = port + 1;
        }
        if begin <= end {
            out.push(PortRange { begin: begin as u16, end: end as u16 });
        }
    }
    out
}

#[cfg(test)]
mod port_tests {
    use super::*;

    fn r(begin: u16, end: u16) -> PortRange {
        PortRange { begin, end }
    }

    #[test]
    fn subtracting_ports_splits_ranges() {
        assert_eq!(subtract_ports(&[r(10, 20)], &[]), vec![r(10, 20)]);
        assert_eq!(subtract_ports(&[r(10, 20)], &[10, 20]), vec![r(11, 19)]);
        assert_eq!(subtract_ports(&[r(10, 20)], &[15, 12, 99]), vec![r(10, 11), r(13, 14), r(16, 20)]);
        assert_eq!(subtract_ports(&[r(10, 10), r(30, 31)], &[10, 31]), vec![r(30, 30)]);
        assert_eq!(subtract_ports(&[r(65534, 65535)], &[65535]), vec![r(65534, 65534)]);
    }
}
