//! JSON ⇄ PostgreSQL values, both ways, for the common types and arrays of them.
//!
//! | PostgreSQL | JSON |
//! | --- | --- |
//! | `bool` | boolean |
//! | `int2`, `int4`, `int8`, `float4`, `float8` | number (non-finite floats as strings: `"NaN"`, `"inf"`) |
//! | `numeric` | string, exact (`"12.50"`); a number or string as a parameter |
//! | `text`, `varchar`, `bpchar`, `name` | string |
//! | `json`, `jsonb` | any JSON value |
//! | `uuid` | string |
//! | `date` | `"2024-01-31"` |
//! | `timestamp` | `"2024-01-31T12:00:00.000000"` |
//! | `timestamptz` | `"2024-01-31T12:00:00.000000Z"` (RFC 3339 with an offset, as a parameter) |
//! | `bytea` | `"\\xdeadbeef"`, PostgreSQL's hex format |
//! | arrays of these | arrays, `null` for NULL elements |
//!
//! SQL NULL is JSON `null` both ways. Any other type is refused with a hint to cast it in SQL.

use rust_decimal::Decimal;
use serde_json::{Number, Value};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql, Type};
use uuid::Uuid;

/// A parameter ready to bind, borrowing from its JSON value where it can: text and JSON
/// parameters are bound as they are, not copied (a 1 MiB string was held twice while its
/// statement ran).
pub(super) type Param<'a> = Box<dyn ToSql + Sync + Send + 'a>;

/// The form of a value this module reads, as error messages describe it.
pub(super) fn expected(ty: &Type) -> &'static str {
    let element = ty.name().trim_start_matches('_');
    let scalar = match element {
        "bool" => "a boolean",
        "int2" | "int4" | "int8" => "an integer in range",
        "float4" | "float8" => "a number",
        "numeric" => "a number or a decimal string",
        "uuid" => "a UUID string",
        "date" => "a date string like 2024-01-31",
        "timestamp" => "a timestamp string like 2024-01-31T12:00:00",
        "timestamptz" => "an RFC 3339 timestamp like 2024-01-31T12:00:00Z",
        "bytea" => "a hex string like \\xdeadbeef",
        "json" | "jsonb" => "any JSON value",
        _ => "a string",
    };
    if ty.name().starts_with('_') {
        "an array (or null) of elements each"
    } else {
        scalar
    }
}

const TIMESTAMP: &[time::format_description::BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]");
const TIMESTAMP_IN: &[time::format_description::BorrowedFormatItem<'_>] = format_description!(
    "[year]-[month]-[day][first [T] [ ]][hour]:[minute]:[second][optional [.[subsecond]]]"
);
const DATE: &[time::format_description::BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]");

macro_rules! mappings {
    ($( $scalar:ident / $array:ident : $rust:ty $(as $bound:ty)?, read $read:expr, show $show:expr; )*) => {
        /// `value` as a parameter of type `ty`: `None` if the type is not mapped,
        /// `Some(Err(()))` if the value does not fit it.
        pub(super) fn param<'a>(value: &'a Value, ty: &Type) -> Option<Result<Param<'a>, ()>> {
            match *ty {
                $(
                    Type::$scalar => Some(scalar::<mappings!(@bound $rust $(as $bound)?)>(value, $read)),
                    Type::$array => Some(array::<mappings!(@bound $rust $(as $bound)?)>(value, $read)),
                )*
                _ => None,
            }
        }

        /// Column `index` of `row` as JSON: `None` if its type is not mapped.
        pub(super) fn column(row: &Row, index: usize) -> Option<Result<Value, tokio_postgres::Error>> {
            match *row.columns()[index].type_() {
                $(
                    Type::$scalar => Some(get::<$rust>(row, index, $show)),
                    Type::$array => Some(get::<Vec<Option<$rust>>>(row, index, |items| {
                        Value::Array(items.into_iter().map(|item| item.map_or(Value::Null, $show)).collect())
                    })),
                )*
                _ => None,
            }
        }
    };
    // The type a parameter is bound as: `as` it when given, else the column's.
    (@bound $rust:ty as $bound:ty) => { $bound };
    (@bound $rust:ty) => { $rust };
}

mappings! {
    BOOL / BOOL_ARRAY: bool, read Value::as_bool, show Value::Bool;
    INT2 / INT2_ARRAY: i16, read |v| v.as_i64().and_then(|n| i16::try_from(n).ok()), show Value::from;
    INT4 / INT4_ARRAY: i32, read |v| v.as_i64().and_then(|n| i32::try_from(n).ok()), show Value::from;
    INT8 / INT8_ARRAY: i64, read Value::as_i64, show Value::from;
    FLOAT4 / FLOAT4_ARRAY: f32, read |v| v.as_f64().map(|f| f as f32), show |f: f32| float(f.to_string().parse().unwrap_or(f64::NAN));
    FLOAT8 / FLOAT8_ARRAY: f64, read Value::as_f64, show float;
    NUMERIC / NUMERIC_ARRAY: Decimal, read decimal, show |d: Decimal| Value::String(d.to_string());
    TEXT / TEXT_ARRAY: String as &str, read Value::as_str, show Value::String;
    VARCHAR / VARCHAR_ARRAY: String as &str, read Value::as_str, show Value::String;
    BPCHAR / BPCHAR_ARRAY: String as &str, read Value::as_str, show Value::String;
    NAME / NAME_ARRAY: String as &str, read Value::as_str, show Value::String;
    JSON / JSON_ARRAY: Value as &Value, read Some, show |v| v;
    JSONB / JSONB_ARRAY: Value as &Value, read Some, show |v| v;
    UUID / UUID_ARRAY: Uuid, read |v| Uuid::parse_str(v.as_str()?).ok(), show |u: Uuid| Value::String(u.to_string());
    DATE / DATE_ARRAY: Date, read |v| Date::parse(v.as_str()?, DATE).ok(), show |d: Date| formatted(d.format(DATE));
    TIMESTAMP / TIMESTAMP_ARRAY: PrimitiveDateTime, read |v| PrimitiveDateTime::parse(v.as_str()?, TIMESTAMP_IN).ok(), show |t: PrimitiveDateTime| formatted(t.format(TIMESTAMP));
    TIMESTAMPTZ / TIMESTAMPTZ_ARRAY: OffsetDateTime, read |v| OffsetDateTime::parse(v.as_str()?, &Rfc3339).ok(), show |t: OffsetDateTime| formatted(t.to_offset(UtcOffset::UTC).format(TIMESTAMP).map(|s| s + "Z"));
    BYTEA / BYTEA_ARRAY: Vec<u8>, read |v| from_hex(v.as_str()?), show |b: Vec<u8>| Value::String(to_hex(&b));
}

fn scalar<'a, T: ToSql + Sync + Send + 'a>(
    value: &'a Value,
    read: fn(&'a Value) -> Option<T>,
) -> Result<Param<'a>, ()> {
    if value.is_null() {
        return Ok(Box::new(None::<T>));
    }
    read(value)
        .map(|v| Box::new(Some(v)) as Param<'a>)
        .ok_or(())
}

fn array<'a, T: ToSql + Sync + Send + 'a>(
    value: &'a Value,
    read: fn(&'a Value) -> Option<T>,
) -> Result<Param<'a>, ()> {
    match value {
        Value::Null => Ok(Box::new(None::<Vec<Option<T>>>)),
        Value::Array(items) => {
            let items: Option<Vec<Option<T>>> = items
                .iter()
                .map(|item| {
                    if item.is_null() {
                        Some(None)
                    } else {
                        read(item).map(Some)
                    }
                })
                .collect();
            items
                .map(|items| Box::new(Some(items)) as Param<'a>)
                .ok_or(())
        }
        _ => Err(()),
    }
}

fn get<T: for<'a> FromSql<'a>>(
    row: &Row,
    index: usize,
    show: fn(T) -> Value,
) -> Result<Value, tokio_postgres::Error> {
    Ok(row
        .try_get::<_, Option<T>>(index)?
        .map_or(Value::Null, show))
}

fn decimal(value: &Value) -> Option<Decimal> {
    match value {
        Value::Number(number) => number.to_string().parse().ok(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

fn float(value: f64) -> Value {
    Number::from_f64(value).map_or_else(|| Value::String(value.to_string()), Value::Number)
}

fn formatted(result: Result<String, time::error::Format>) -> Value {
    result.map_or(Value::Null, Value::String)
}

fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + bytes.len() * 2);
    out.push_str("\\x");
    for byte in bytes {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.strip_prefix("\\x")?.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytea_hex_round_trips() {
        assert_eq!(to_hex(&[0xde, 0xad, 0x00]), "\\xdead00");
        assert_eq!(from_hex("\\xdead00"), Some(vec![0xde, 0xad, 0x00]));
        assert_eq!(from_hex("dead"), None);
        assert_eq!(from_hex("\\xabc"), None);
    }

    #[test]
    fn integers_out_of_range_do_not_fit() {
        assert!(param(&Value::from(70000), &Type::INT2).is_some_and(|r| r.is_err()));
        assert!(param(&Value::from(7), &Type::INT2).is_some_and(|r| r.is_ok()));
        assert!(param(&Value::from("7"), &Type::INT4).is_some_and(|r| r.is_err()));
        assert!(param(&Value::from("x"), &Type::INET).is_none());
    }

    #[test]
    fn floats_that_json_cannot_hold_become_strings() {
        assert_eq!(float(f64::NAN), Value::String("NaN".into()));
        assert_eq!(float(1.5), Value::from(1.5));
    }
}
