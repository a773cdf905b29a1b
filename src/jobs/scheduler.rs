//! Timed transitions: close a window when its registration period ends, draw it at its
//! draw time when its beacon is `none`, and erase its personal data once its slots are
//! past by the retention period ([`super::retention`]).
//!
//! The scheduler keeps no state of its own: every tick it asks the database which
//! transitions are due. After a restart it therefore performs whatever was missed, and
//! since each transition is a conditional update, it happens exactly once even with
//! several instances or a staff member pressing the button at the same moment.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::clock::Clock;
use crate::lifecycle::{self, DrawError};
use crate::store::draws::DueTransition;
use crate::store::{Actor, Store, StoreError};

/// Runs until `stop` turns true, checking every `every`; personal data is erased
/// `retention` after a window's last slot.
pub async fn run(
    store: Store,
    clock: Arc<dyn Clock>,
    every: Duration,
    retention: chrono::Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tick(&store, clock.as_ref()).await;
        super::retention::tick(&store, clock.now(), retention).await;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// Performs every transition that is due now. Returns how many were made.
pub async fn tick(store: &Store, clock: &dyn Clock) -> usize {
    let now = clock.now();
    let due = match store.due_transitions(now).await {
        Ok(due) => due,
        Err(error) => {
            tracing::error!(error = %error, "cannot read due transitions");
            return 0;
        }
    };
    let mut done = 0;
    for (window_id, step) in due {
        let result = match step {
            DueTransition::Close => lifecycle::close(store, &window_id, &Actor::System, now)
                .await
                .map(drop)
                .map_err(DrawError::from),
            DueTransition::Draw => {
                lifecycle::run_draw(store, &window_id, None, &Actor::System, now)
                    .await
                    .map(drop)
            }
        };
        match result {
            Ok(()) => done += 1,
            // another instance (or a staff request) made the step first
            Err(DrawError::Store(StoreError::WrongState(_))) => {}
            Err(error) => {
                tracing::error!(window.id = %window_id, step = ?step, error = %error, "scheduled transition failed");
            }
        }
    }
    super::offers::tick(store, now).await;
    done
}
