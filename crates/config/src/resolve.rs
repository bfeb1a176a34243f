//! Typed reads of keys from a property source, with the table's defaults and checks: the only
//! place a value string becomes a number.

use std::cell::RefCell;

use crate::keys::{any_key, Key};
use crate::ConfigError;

/// Reads keys through `get` (a key name to its set value, if any). Every read of a key that a
/// topic may override is remembered with the value it resolved to, so DescribeConfigs can show
/// a topic's effective configs without a second list of them.
pub(crate) struct Resolver<'a> {
    get: &'a dyn Fn(&Key) -> Option<&'a str>,
    pub(crate) topic_values: RefCell<Vec<(&'static Key, String)>>,
}

impl<'a> Resolver<'a> {
    pub(crate) fn new(get: &'a dyn Fn(&Key) -> Option<&'a str>) -> Self {
        Resolver { get, topic_values: RefCell::new(Vec::new()) }
    }

    fn key(name: &str) -> Result<&'static Key, ConfigError> {
        // Only reachable through a misspelt name in this crate; the unit tests read every key.
        any_key(name).ok_or_else(|| ConfigError::UnknownKey(name.to_string()))
    }

    /// The value set for `name`, checked; `None` if it is unset.
    pub(crate) fn set(&self, name: &str) -> Result<Option<&'a str>, ConfigError> {
        let k = Self::key(name)?;
        let v = (self.get)(k);
        if let Some(v) = v {
            k.check_value(k.name, v)?;
        }
        Ok(v)
    }

    /// The value set for `name`, or its default value.
    pub(crate) fn text(&self, name: &str) -> Result<Option<&'a str>, ConfigError> {
        let k = Self::key(name)?;
        let v = self.set(name)?.or(k.default_value());
        if let (Some(v), Some(_)) = (v, k.topic) {
            self.remember(k, v.to_string());
        }
        Ok(v)
    }

    pub(crate) fn remember(&self, k: &'static Key, value: String) {
        let mut values = self.topic_values.borrow_mut();
        values.retain(|(o, _)| o.name != k.name);
        values.push((k, value));
    }

    fn required(&self, name: &str) -> Result<&'a str, ConfigError> {
        self.text(name)?.ok_or_else(|| ConfigError::InvalidValue { key: name.into(), value: String::new(), reason: "no value".into() })
    }

    /// An integer key, in the range of `T` (the table's check bounds it already).
    pub(crate) fn int<T: TryFrom<i64>>(&self, name: &str) -> Result<T, ConfigError> {
        let v = self.required(name)?;
        let n: i64 = v.trim().parse().map_err(|e: std::num::ParseIntError| invalid(name, v, e.to_string()))?;
        T::try_from(n).map_err(|_| invalid(name, v, "out of range".into()))
    }

    pub(crate) fn bool(&self, name: &str) -> Result<bool, ConfigError> {
        let v = self.required(name)?;
        v.trim().parse().map_err(|e: std::str::ParseBoolError| invalid(name, v, e.to_string()))
    }

    pub(crate) fn float(&self, name: &str) -> Result<f64, ConfigError> {
        let v = self.required(name)?;
        v.trim().parse().map_err(|e: std::num::ParseFloatError| invalid(name, v, e.to_string()))
    }
}

pub(crate) fn invalid(key: &str, value: &str, reason: String) -> ConfigError {
    ConfigError::InvalidValue { key: key.into(), value: value.into(), reason }
}
