//! Reading the argument of a socket.io event from its raw JSON text.
//!
//! A socket.io event arrives as the text `["<event>", <arg0>, <arg1>, ...]`.
//! rtc.io sends exactly one argument. [`first_arg`] deserializes `arg0` in a
//! single pass without building an intermediate `serde_json::Value`; further
//! arguments are skipped, a missing one reads as JSON `null`.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, SeqAccess, Visitor};

/// Deserialize the first argument of an event frame `["event", arg0, ...]`.
pub fn first_arg<'a, T: Deserialize<'a>>(frame: &'a str) -> Result<T, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(frame);
    let value = FirstArg(PhantomData).deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// The event name of a frame `["event", ...]`, if it has one.
pub fn event_name(frame: &str) -> Option<String> {
    struct Name;
    impl<'de> Visitor<'de> for Name {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a socket.io event array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let name = seq.next_element::<String>()?;
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(name)
        }
    }
    serde_json::Deserializer::from_str(frame).deserialize_seq(Name).ok().flatten()
}

struct FirstArg<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for FirstArg<T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for FirstArg<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a socket.io event array [event, args...]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        // The event name itself: socketioxide already routed on it.
        seq.next_element::<IgnoredAny>()?;
        let value = match seq.next_element::<T>()? {
            Some(v) => v,
            // No argument at all: let T decide whether null is acceptable.
            None => T::deserialize(serde::de::value::UnitDeserializer::new())?,
        };
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    #[test]
    fn reads_first_argument() {
        let v: serde_json::Value = first_arg(r#"["join-room",{"roomId":"r"}]"#).unwrap();
        assert_eq!(v["roomId"], "r");
    }

    #[test]
    fn skips_extra_arguments() {
        let v: u32 = first_arg(r#"["e",7,{"x":[1,2]},"z"]"#).unwrap();
        assert_eq!(v, 7);
    }

    #[test]
    fn missing_argument_is_null() {
        let v: Option<u32> = first_arg(r#"["e"]"#).unwrap();
        assert_eq!(v, None);
        assert!(first_arg::<u32>(r#"["e"]"#).is_err());
    }

    #[test]
    fn raw_argument_is_borrowed_verbatim() {
        let frame = r##"["#rtcio:message", {"source":"a", "target":"b","data":{}} ]"##;
        let raw: &RawValue = first_arg(frame).unwrap();
        assert_eq!(raw.get(), r#"{"source":"a", "target":"b","data":{}}"#);
    }

    #[test]
    fn event_names() {
        assert_eq!(event_name(r#"["hello",1]"#).as_deref(), Some("hello"));
        assert_eq!(event_name(r#"[]"#), None);
        assert_eq!(event_name(r#"[1]"#), None);
    }

    #[test]
    fn rejects_non_arrays_and_trailing_garbage() {
        assert!(first_arg::<serde_json::Value>(r#"{"a":1}"#).is_err());
        assert!(first_arg::<serde_json::Value>(r#"["e",1] x"#).is_err());
        assert!(first_arg::<serde_json::Value>(r#"["e",1"#).is_err());
    }
}
