//! [`StatsSource`] over the real stats engine ([`crate::stats::Engine`]).
//!
//! The engine answers one range at a time; the web side always shows the
//! previous period beside the current one, so both are asked concurrently
//! here. The dashboard's panels are the breakdown panels declared in
//! `dashboards/*.toml` (the `overview` dashboard first), so adding a panel
//! there adds it to every site's page, its CSV export and the ZIP.

use super::source::{BoxFut, PanelSpec, Series, StatsSource, Totals};
use crate::clock::SharedClock;
use crate::stats::panels::Kind;
use crate::stats::{Breakdown, Dimension, Engine, Interval, StatsError, StatsRequest, StatsResult};

pub struct EngineSource {
    pub engine: Engine,
    pub clock: SharedClock,
}

fn previous(req: &StatsRequest) -> StatsRequest {
    StatsRequest { range: req.range.previous(), ..req.clone() }
}

impl StatsSource for EngineSource {
    fn aggregate<'a>(&'a self, req: &'a StatsRequest) -> BoxFut<'a, Totals> {
        Box::pin(async move {
            let prev = previous(req);
            let (current, previous) = tokio::try_join!(self.engine.aggregate(req), self.engine.aggregate(&prev))?;
            Ok(Totals { current, previous, visitor_days: req.range.days() > 1 })
        })
    }

    fn timeseries<'a>(&'a self, req: &'a StatsRequest, interval: Interval) -> BoxFut<'a, Series> {
        Box::pin(async move {
            let prev = previous(req);
            let (current, previous) =
                tokio::try_join!(self.engine.timeseries(req, interval), self.engine.timeseries(&prev, interval))?;
            Ok(Series { interval, current, previous, visitor_days: req.range.days() > 1 })
        })
    }

    fn breakdown<'a>(
        &'a self,
        req: &'a StatsRequest,
        dimension: Dimension,
        limit: usize,
        k: Option<u64>,
    ) -> BoxFut<'a, Breakdown> {
        Box::pin(self.engine.breakdown(req, dimension, limit, k))
    }

    fn panel_breakdown<'a>(
        &'a self,
        req: &'a StatsRequest,
        spec: &'a PanelSpec,
        limit: usize,
        k: Option<u64>,
    ) -> BoxFut<'a, Breakdown> {
        Box::pin(async move {
            if !spec.custom {
                return self.engine.breakdown(req, spec.dimension, limit, k).await;
            }
            match self.engine.panel_by_id(&spec.id, req, k).await? {
                StatsResult::Breakdown(b) => Ok(b),
                _ => Err(StatsError::Invalid(format!("panel `{}` is not a breakdown", spec.id))),
            }
        })
    }

    fn realtime_visitors<'a>(&'a self, site: &'a str) -> BoxFut<'a, u64> {
        Box::pin(self.engine.realtime_visitors(site, self.clock.now()))
    }

    fn panels(&self, _site: &str) -> Vec<PanelSpec> {
        let panels = self.engine.panels();
        let mut dashboards: Vec<_> = panels.dashboards.iter().collect();
        dashboards.sort_by_key(|d| d.id != "overview");
        dashboards
            .into_iter()
            .flat_map(|d| d.panels.iter())
            .filter(|p| p.kind == Kind::Breakdown)
            .filter_map(|p| {
                Some(PanelSpec {
                    id: p.id.clone(),
                    dimension: p.dimension?,
                    prop: p.prop.clone(),
                    title_en: Some(p.title_en.clone()),
                    title_ru: Some(p.title_ru.clone()),
                    limit: p.limit,
                    custom: p.query.is_some(),
                })
            })
            .collect()
    }
}
