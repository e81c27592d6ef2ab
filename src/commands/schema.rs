//! `razar schema [NAME]`: prints the generated JSON Schemas.

use crate::cli::SchemaArgs;
use crate::error::{Error, Result};
use crate::exit;

pub fn run(args: SchemaArgs) -> Result<u8> {
    let all = crate::schema::all();
    let out = match &args.name {
        None => serde_json::Value::Object(all.into_iter().map(|(n, s)| (n.to_owned(), s)).collect()),
        Some(name) => match all.into_iter().find(|(n, _)| n == name) {
            Some((_, s)) => s,
            None => {
                let names: Vec<&str> = crate::schema::all().iter().map(|(n, _)| *n).collect();
                return Err(Error::Usage(format!("unknown schema {name:?}; choose one of {}", names.join(", "))));
            }
        },
    };
    crate::outln!("{}", serde_json::to_string_pretty(&out).map_err(|e| Error::Internal(e.to_string()))?);
    Ok(exit::SUCCESS)
}
