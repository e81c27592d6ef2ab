//! Operator requests from the control socket, as machine events.

use super::Dispatcher;
use crate::control::protocol::{Envelope, Request, Response};
use crate::sequencer::machine::{Event, Op};

impl Dispatcher {
    pub(super) fn on_request(&mut self, envelope: Envelope) {
        let response = match envelope.request {
            Request::Status => Response::state(self.snapshot_json()),
            Request::QuarantineReload => self.reload_quarantine(),
            Request::Restart { component } => self.operator(Op::Restart, component),
            Request::Stop { component } => self.operator(Op::Stop, component),
            Request::Start { component } => self.operator(Op::Start, component),
        };
        let _ = envelope.reply.send(response);
    }

    fn operator(&mut self, op: Op, component: String) -> Response {
        reply(self.apply(Event::Operator { op, component }))
    }

    /// Applies the ledger: newly quarantined components stop, released ones start again.
    fn reload_quarantine(&mut self) -> Response {
        // Every entry file counts, readable or not: an unreadable entry keeps its component out.
        match self.services.ledger.names() {
            Ok(names) => reply(self.apply(Event::Ledger(names.iter().map(std::string::ToString::to_string).collect()))),
            Err(e) => Response::error(format!("cannot read the quarantine ledger: {e}")),
        }
    }

    /// The live state, as `logs/razar_state.json` would hold it now.
    pub(super) fn snapshot_json(&mut self) -> serde_json::Value {
        self.refresh_state();
        serde_json::to_value(&self.state).unwrap_or_default()
    }

    pub(super) fn refresh_state(&mut self) {
        self.state.components = self.machine.snapshot();
        self.state.quarantine = self
            .machine
            .units()
            .iter()
            .filter(|u| u.status() == crate::state::ComponentStatus::Quarantined)
            .map(|u| u.cfg.name.to_string())
            .collect();
    }
}

fn reply(answer: Option<Result<String, String>>) -> Response {
    match answer {
        Some(Ok(message)) => Response::ok(message),
        Some(Err(message)) => Response::error(message),
        None => Response::error("no answer (internal error)"),
    }
}
