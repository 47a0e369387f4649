//! The integration tests: one binary, driving the library and the two binaries from outside.
//!
//! Shared helpers live in `support/`; each other module is one area of behaviour.

mod support;

mod api;
mod api_limits;
mod architecture;
mod binding_config;
mod binding_metrics;
mod chaos_db;
mod chaos_http;
mod cli;
mod contracts;
mod db;
mod db_faults;
mod db_pool;
mod db_retry;
mod db_transaction;
mod db_transaction_faults;
mod deploy;
mod handler_contracts;
mod host;
mod http;
mod http_methods;
mod kafka;
mod kafka_contract;
mod kafka_outage;
mod lenient;
mod named_bindings;
mod receipts;
mod resilience;
mod routing;
mod secrets;
mod shutdown;
