//! A catalogue screened by the input roots ([`InputRoots`], the domain's rules of where inputs may
//! be read from): ingestion quarantines a product whose source is refused; task building fails the
//! job ([`crate::api::tasks::TaskLocations::attempt_task`]).

use async_trait::async_trait;
pub use swath_domain::input_roots::{InputRefused, InputRoots};

use super::{
    Catalogue, CatalogueError, CataloguePage, CatalogueQuery, InvalidEntry, PageCursor,
    WithdrawalQuery, WithdrawnPage,
};

/// A catalogue whose products are screened: those whose storage path is refused by the input roots
/// become invalid entries (quarantined by ingestion, with the reason), never jobs.
pub struct InputScreen {
    inner: std::sync::Arc<dyn Catalogue>,
    roots: InputRoots,
}

impl InputScreen {
    /// `inner`, screened by `roots`.
    pub fn new(inner: std::sync::Arc<dyn Catalogue>, roots: InputRoots) -> Self {
        InputScreen { inner, roots }
    }
}

#[async_trait]
impl Catalogue for InputScreen {
    fn source(&self) -> String {
        self.inner.source()
    }

    async fn page(
        &self,
        query: &CatalogueQuery,
        cursor: Option<&PageCursor>,
    ) -> Result<CataloguePage, CatalogueError> {
        let mut page = self.inner.page(query, cursor).await?;
        let listed = std::mem::take(&mut page.products);
        for product in listed {
            match self.roots.resolve(&product.input_path) {
                Ok(_) => page.products.push(product),
                Err(refused) => page.invalid.push(InvalidEntry {
                    name: product.name.clone(),
                    reason: refused.to_string(),
                    raw: serde_json::to_value(&product).unwrap_or_default(),
                }),
            }
        }
        Ok(page)
    }

    async fn withdrawn(
        &self,
        query: &WithdrawalQuery,
        cursor: Option<&PageCursor>,
    ) -> Result<WithdrawnPage, CatalogueError> {
        self.inner.withdrawn(query, cursor).await
    }
}
