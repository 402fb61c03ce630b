//! Poll plans for new orders (learned polling): made from the summaries of
//! an order's products, kept per container for a short while so that a
//! burst of orders of one product costs one summary read, not one each.
//!
//! An order of products with too few observations gets a warm-up plan
//! (the default schedule's times and a probe). A summary that cannot be
//! read is not an error for the order: it is polled on the default
//! schedule.

use crate::domain::OrderLine;
use crate::domain::learning::summary::Masses;
use crate::domain::learning::{Learning, OrderPlan, Plan, PlanKind};
use crate::store::SummaryReader;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use tracing::warn;

/// A random number in `[0, 1)` (jitter, probes).
pub fn random_unit() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}

/// Product sets a container keeps plans for at most.
const CACHED_AT_MOST: usize = 512;

/// What a set of products calls for.
#[derive(Clone, Debug)]
enum Planned {
    /// Too few observations yet; what they estimate so far.
    WarmUp(Vec<Masses>),
    /// A plan, and the estimates it was made from.
    Learned { plan: Plan, estimates: Vec<Masses> },
}

#[derive(Debug)]
struct Cached {
    made_at: Instant,
    planned: Planned,
}

/// Plans for new orders, cached per product set.
#[derive(Debug)]
pub struct Plans {
    pub learning: Learning,
    /// How long a plan (or the lack of one) is used before the summaries
    /// are read again.
    pub keep_for: Duration,
    cache: Mutex<HashMap<BTreeSet<String>, Cached>>,
}

impl Default for Plans {
    /// Learning as the settings' defaults have it.
    fn default() -> Self {
        let schedule = crate::domain::schedule::Schedule::default();
        Self::new(
            Learning::new(&schedule, Duration::from_secs(10), 20),
            Duration::from_secs(60),
        )
    }
}

impl Plans {
    pub fn new(learning: Learning, keep_for: Duration) -> Self {
        Self {
            learning,
            keep_for,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The poll times for a new order of `lines`, or `None`: the default
    /// schedule (learning off, or a summary that could not be read).
    pub async fn plan_for(
        &self,
        store: &impl SummaryReader,
        lines: &[OrderLine],
    ) -> Option<OrderPlan> {
        if !self.learning.enabled {
            return None;
        }
        let products: BTreeSet<String> = lines.iter().map(|l| l.product_id.clone()).collect();
        let cached = self
            .cache
            .lock()
            .expect("plan cache")
            .get(&products)
            .filter(|c| c.made_at.elapsed() < self.keep_for)
            .map(|c| c.planned.clone());
        let planned = match cached {
            Some(planned) => planned,
            None => {
                let mut summaries = Vec::with_capacity(products.len());
                for product in &products {
                    match store.summary(product).await {
                        Ok(summary) => summaries.push(summary),
                        Err(error) => {
                            warn!(%error, product_id = %product, "summary not read; default schedule");
                            return None;
                        }
                    }
                }
                let planned = match self.learning.estimates(&summaries) {
                    Some(estimates) => Planned::Learned {
                        plan: self.learning.plan(&estimates),
                        estimates,
                    },
                    None => Planned::WarmUp(self.learning.so_far(&summaries)),
                };
                let mut cache = self.cache.lock().expect("plan cache");
                if cache.len() >= CACHED_AT_MOST {
                    // Bounded: the expired go first, then everything.
                    cache.retain(|_, c| c.made_at.elapsed() < self.keep_for);
                    if cache.len() >= CACHED_AT_MOST {
                        cache.clear();
                    }
                }
                cache.insert(
                    products,
                    Cached {
                        made_at: Instant::now(),
                        planned: planned.clone(),
                    },
                );
                planned
            }
        };
        let (kind, plan) = match planned {
            Planned::WarmUp(estimates) => (
                PlanKind::WarmUp,
                self.learning
                    .warm_up(&estimates, random_unit(), random_unit())?,
            ),
            Planned::Learned { plan, estimates } => (
                PlanKind::Learned,
                self.learning.with_probe(
                    &plan,
                    &estimates,
                    random_unit(),
                    random_unit(),
                    random_unit(),
                ),
            ),
        };
        Some(OrderPlan {
            kind,
            plan: self.learning.for_order(&plan, random_unit()),
        })
    }
}
