//! The site endpoints: a site's public face for the widget carrying its key. (An org's
//! sites are managed through the portal, which resolves the org and calls
//! [`crate::sites::service`]; [`views`] has the views it answers with.)

pub mod views;

use worker::{Request, Response};

use crate::error::AppError;
use crate::http::doc::Doc;
use crate::http::{response, Ctx};
use crate::sites::service::SiteCaller;
use views::SiteFaceView;

/// `GET /api/site`: the calling site's id, name and type, and its org's name and slug.
pub async fn face(_req: Request, _ctx: Ctx, caller: SiteCaller) -> Result<Response, AppError> {
    response::ok(&SiteFaceView::from(&caller))
}

/// What `/openapi.json` says of `GET /api/site`.
pub fn face_doc() -> Doc {
    Doc::new(
        "The calling site's public face for its widget: id, name, type and its org's \
         name and slug",
    )
    .ok::<SiteFaceView>(200)
}
