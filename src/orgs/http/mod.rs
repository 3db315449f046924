//! The portal's org endpoints: the overview, the daily series, the team, the configuration,
//! and the staff's client list. The pipeline has resolved the org each acts on (see
//! [`crate::orgs::service::admit`]).

pub mod engines;
pub mod views;
pub mod workflows;

use worker::{Request, Response};

use crate::error::AppError;
use crate::http::doc::Doc;
use crate::http::{self, response, Ctx};
use crate::orgs::rules::{self, OrgConfig, MAX_SERIES_DAYS};
use crate::orgs::service::{self as orgs, NewOrg, PortalCaller};
use views::{
    ClientView, ClientsView, ConfigView, DayView, InsightsQuery, InsightsView, MemberView,
    OrgPlanView, OrgUsageView, OrgView, OverviewView, PortalQuery, TeamView, TotalsView,
};

/// `GET /portal/overview`: the org, its plan, this month's usage and the last 30 days.
pub async fn overview(_req: Request, ctx: Ctx, caller: PortalCaller) -> Result<Response, AppError> {
    let org = caller.org()?;
    let (tokens, voice) = orgs::usage(&ctx, org).await?;
    let (from, to) = (
        orgs::day(ctx.data.now_ms, 29),
        orgs::day(ctx.data.now_ms, 0),
    );
    let days = orgs::days(&ctx, org, &from, &to, None).await?;
    response::ok(&OverviewView {
        org: OrgView::from(org),
        role: caller.role,
        plan: OrgPlanView::from(orgs::plan(&ctx, org)),
        usage: OrgUsageView::new(&tokens, &voice),
        last_30_days: TotalsView::new(from, to, &days),
    })
}

/// What `/openapi.json` says of `GET /portal/overview`.
pub fn overview_doc() -> Doc {
    Doc::new("The org, its plan, this month's usage and the last 30 days' activity")
        .query::<PortalQuery>()
        .ok::<OverviewView>(200)
}

/// `GET /portal/insights`: the org's daily series (every day of the span, zeros where
/// nothing happened), for all its sites or one.
pub async fn insights(req: Request, ctx: Ctx, caller: PortalCaller) -> Result<Response, AppError> {
    let org = caller.org()?;
    let pairs = http::query_pairs(&req)?;
    let param = |name: &str| {
        pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let day = |name: &'static str, default: String| -> Result<i64, AppError> {
        let text = param(name).unwrap_or(default);
        rules::parse_day(&text).ok_or_else(|| AppError::invalid(name, "must be a day YYYY-MM-DD"))
    };
    let to = day("to", orgs::day(ctx.data.now_ms, 0))?;
    let from = day("from", rules::format_day(to - 29))?;
    if from > to {
        return Err(AppError::invalid("from", "must not be after `to`"));
    }
    if to - from >= MAX_SERIES_DAYS {
        return Err(AppError::invalid(
            "to",
            format!("a series spans at most {MAX_SERIES_DAYS} days"),
        ));
    }
    let site_id = param("site_id");
    let (from_text, to_text) = (rules::format_day(from), rules::format_day(to));
    let found = orgs::days(&ctx, org, &from_text, &to_text, site_id.as_deref()).await?;
    let days = (from..=to)
        .map(rules::format_day)
        .map(|day| match found.iter().find(|row| row.day == day) {
            Some(row) => DayView::from(row),
            None => DayView::empty(day),
        })
        .collect();
    response::ok(&InsightsView {
        org_id: org.id.clone(),
        totals: TotalsView::new(from_text.clone(), to_text.clone(), &found),
        from: from_text,
        to: to_text,
        site_id,
        days,
    })
}

/// What `/openapi.json` says of `GET /portal/insights`.
pub fn insights_doc() -> Doc {
    Doc::new("The org's daily activity series (all its sites, or one)")
        .query::<InsightsQuery>()
        .ok::<InsightsView>(200)
}

/// `GET /portal/team`: the org's members and roles, from Clerk.
pub async fn team(_req: Request, ctx: Ctx, caller: PortalCaller) -> Result<Response, AppError> {
    let org = caller.org()?;
    let members = orgs::team(&ctx, org).await?;
    response::ok(&TeamView {
        org_id: org.id.clone(),
        members: members.iter().map(MemberView::from).collect(),
    })
}

/// What `/openapi.json` says of `GET /portal/team`.
pub fn team_doc() -> Doc {
    Doc::new("The org's members and their roles, from Clerk")
        .query::<PortalQuery>()
        .ok::<TeamView>(200)
}

/// `GET /portal/config`.
pub async fn get_config(
    _req: Request,
    ctx: Ctx,
    caller: PortalCaller,
) -> Result<Response, AppError> {
    let _ = &ctx;
    let org = caller.org()?;
    response::ok(&ConfigView {
        org_id: org.id.clone(),
        config: org.config.clone(),
    })
}

/// What `/openapi.json` says of `GET /portal/config`.
pub fn get_config_doc() -> Doc {
    Doc::new("The org's configuration")
        .query::<PortalQuery>()
        .ok::<ConfigView>(200)
}

/// `PATCH /portal/config`: changes the given fields (`null` clears one); every field is
/// checked and unknown ones refused, and nothing changes on any problem.
pub async fn patch_config(
    _req: Request,
    ctx: Ctx,
    caller: PortalCaller,
) -> Result<Response, AppError> {
    let patch: serde_json::Value = ctx.data.json()?;
    let config = orgs::patch_config(&ctx, &caller, &patch).await?;
    response::ok(&ConfigView {
        org_id: caller.org()?.id.clone(),
        config,
    })
}

/// What `/openapi.json` says of `PATCH /portal/config`.
pub fn patch_config_doc() -> Doc {
    Doc::new("Change the org's configuration: given fields replace, null clears")
        .query::<PortalQuery>()
        .body::<OrgConfig>()
        .ok::<ConfigView>(200)
        .errors(&["conflict"])
}

/// `GET /portal/clients` (staff): every org.
pub async fn clients(_req: Request, ctx: Ctx, _caller: PortalCaller) -> Result<Response, AppError> {
    let rows = orgs::clients(&ctx).await?;
    response::ok(&ClientsView {
        clients: rows.into_iter().map(ClientView::new).collect(),
    })
}

/// What `/openapi.json` says of `GET /portal/clients`.
pub fn clients_doc() -> Doc {
    Doc::new("Every org, with its plan, status, sites and last 30 days' messages")
        .ok::<ClientsView>(200)
}

/// `POST /portal/clients` (staff): makes an org.
pub async fn create_client(
    _req: Request,
    ctx: Ctx,
    caller: PortalCaller,
) -> Result<Response, AppError> {
    let new: NewOrg = ctx.data.json()?;
    let org = orgs::create(&ctx, &caller, new).await?;
    response::json(201, &OrgView::from(&org))
}

/// What `/openapi.json` says of `POST /portal/clients`.
pub fn create_client_doc() -> Doc {
    Doc::new("Make an org (a client), mapped to its Clerk organisation")
        .body::<NewOrg>()
        .ok::<OrgView>(201)
        .errors(&["conflict"])
}
