//! What one handler call cost. A leaf module: the runtime fills it in, the
//! runtime families record it, and neither needs the other for it.

use std::time::Duration;

/// What one call cost, whatever its outcome.
#[derive(Clone, Copy, Debug, Default)]
pub struct CallStats {
    /// Time to create the instance; none when no instance was created.
    pub instantiate: Option<Duration>,
    /// The call ran on an instance that had served before.
    pub reused: bool,
    /// Time inside the guest's export, including host calls it made.
    pub call: Duration,
    /// The largest size the guest's linear memory reached, in bytes.
    pub memory_high_water: usize,
}

impl CallStats {
    /// Whether the guest ran: an instance was created, or a warm one used.
    /// None did when no slot was free or instantiation failed.
    pub fn ran(&self) -> bool {
        self.instantiate.is_some() || self.reused
    }

    /// The stats of a call on which the guest ran, for the families that
    /// record the guest's cost; none otherwise.
    pub fn if_ran(self) -> Option<CallStats> {
        self.ran().then_some(self)
    }
}

/// Where the time of one fresh-instance call goes: what the `boundary`
/// benchmark reports, timed inside the call path every request takes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Phases {
    /// `Store::new` with its WASI context, table and limits.
    pub new_store: Duration,
    pub instantiate: Duration,
    /// The call of the export on the instance.
    pub call: Duration,
    /// Dropping the store: the pool slot is reset for the next instance.
    pub drop: Duration,
}
