//! Where a job runs: the `device` field of a job config and `--device`, parsed once into
//! a [`DeviceSpec`] so that a typo is an error when the config is read, not when the
//! trainer is built.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `cpu`, `cuda:N` (`cuda` is `cuda:0`) or `auto` (the first GPU when this build has
/// CUDA and one is present, else the CPU). Written and read as those strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    /// `"cpu"` (the default).
    #[default]
    Cpu,
    /// `"cuda:N"`: GPU number N (`"cuda"` is `cuda:0`).
    Cuda(usize),
    /// `"auto"`: CUDA when built with it and a GPU is present, else the CPU.
    Auto,
}

/// The values a device may take, for error messages and `--help`.
pub const DEVICE_VALUES: &str = "\"cpu\", \"cuda\", \"cuda:N\", \"auto\"";

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let invalid = || format!("unknown device {s:?}, expected one of {DEVICE_VALUES}");
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "auto" => Ok(DeviceSpec::Auto),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => match s.strip_prefix("cuda:") {
                Some(n) => n.parse().map(DeviceSpec::Cuda).map_err(|_| {
                    format!("unknown device {s:?}: expected cuda:N with N a GPU index")
                }),
                None => Err(invalid()),
            },
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceSpec::Auto => f.write_str("auto"),
        }
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl DeviceSpec {
    /// Fails, naming the device, when it asks for CUDA and this build has none; opens
    /// nothing.
    pub fn check(&self) -> Result<()> {
        match self {
            DeviceSpec::Cuda(_) if !candle_core::utils::cuda_is_available() => Err(Error::config(
                "device",
                format!("{self}: this build has no CUDA support (rebuild with --features cuda)"),
            )),
            _ => Ok(()),
        }
    }

    /// The candle device.
    pub fn open(&self) -> Result<Device> {
        self.check()?;
        match *self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Auto => Ok(Device::cuda_if_available(0)?),
            DeviceSpec::Cuda(n) => {
                Device::new_cuda(n).map_err(|e| Error::config("device", format!("{self}: {e}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_form() {
        for (text, spec) in [
            ("cpu", DeviceSpec::Cpu),
            ("auto", DeviceSpec::Auto),
            ("cuda:1", DeviceSpec::Cuda(1)),
        ] {
            assert_eq!(text.parse::<DeviceSpec>().unwrap(), spec);
            assert_eq!(spec.to_string(), text);
        }
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        let err = "gpu".parse::<DeviceSpec>().unwrap_err();
        assert!(err.contains("\"gpu\"") && err.contains("cuda:N"), "{err}");
        let err = "cuda:x".parse::<DeviceSpec>().unwrap_err();
        assert!(err.contains("cuda:x"), "{err}");
    }
}
