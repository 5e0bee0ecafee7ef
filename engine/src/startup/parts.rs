//! The parts the settings choose: the executor (local or Nomad) and the publisher (a file or
//! RabbitMQ).

use std::sync::Arc;

use crate::config::{ExecutorKind, PublisherKind, Settings};
use crate::executor::local::LocalExecutor;
use crate::executor::nomad::NomadExecutor;
use crate::executor::Executor;
use crate::publish::file::FilePublisher;
use crate::publish::rabbitmq::{RabbitConfig, RabbitPublisher};
use crate::publish::Publisher;

use super::Options;

/// The executor the settings choose, and whose attempts this instance tracks (`Some`: only its own,
/// for an executor that lives in this process).
pub(super) async fn executor(
    settings: &Settings,
    service_id: uuid::Uuid,
    orchestrator_url: String,
    options: &Options,
) -> anyhow::Result<(Arc<dyn Executor>, Option<uuid::Uuid>)> {
    Ok(match settings.executor {
        ExecutorKind::Local => {
            let mut local = LocalExecutor::new(
                settings.local_worker_command()?,
                orchestrator_url,
                settings.local_work_root(),
                settings.flavors.clone(),
            )
            // Workers share this process's stores: their storage settings, and nothing else of
            // its environment.
            .with_worker_env({
                let mut env = crate::executor::local::storage_env();
                env.extend(options.worker_env.clone());
                env
            });
            if let Some(dir) = &options.worker_log_dir {
                local = local.with_log_dir(dir.clone());
            }
            (Arc::new(local), Some(service_id))
        }
        ExecutorKind::Nomad => {
            let config = settings.nomad_config().map_err(anyhow::Error::msg)?;
            // Only the flavors of the enabled job types: their worker jobs are the ones to
            // register, count and watch.
            let registry = settings.registry()?;
            let used: Vec<&str> = settings
                .job_types
                .iter()
                .filter_map(|t| registry.get(t))
                .map(|t| t.spec().worker_flavor.as_str())
                .collect();
            let flavors = settings
                .flavors
                .iter()
                .filter(|f| used.contains(&f.name.as_str()))
                .cloned()
                .collect();
            let nomad = NomadExecutor::new(config, flavors);
            if let Err(e) = nomad.register_all().await {
                tracing::warn!(error = %e, "cannot register the worker jobs in Nomad yet; they are registered when dispatching");
            }
            (Arc::new(nomad), None)
        }
    })
}

/// The publisher the settings choose, and the RabbitMQ one when it is that (it also reads the
/// catalogue's failure acknowledgements).
pub(super) fn publisher(settings: &Settings) -> (Arc<dyn Publisher>, Option<Arc<RabbitPublisher>>) {
    match settings.publisher {
        PublisherKind::File => {
            let path = settings.publication_file();
            tracing::info!(file = %path.display(), "publishing to a JSON-lines file");
            let file = FilePublisher::new(
                path,
                settings.rabbitmq_routing_key.clone(),
                settings.publication_encoding,
            );
            (Arc::new(file), None)
        }
        PublisherKind::Rabbitmq => {
            let rabbit = Arc::new(RabbitPublisher::new(RabbitConfig {
                url: settings.rabbitmq_url().to_string(),
                exchange: settings.rabbitmq_exchange.clone(),
                exchange_kind: settings.rabbitmq_exchange_kind.clone(),
                routing_key: settings.rabbitmq_routing_key.clone(),
                encoding: settings.publication_encoding,
                ..RabbitConfig::default()
            }));
            tracing::info!(exchange = %settings.rabbitmq_exchange, "publishing to RabbitMQ");
            (Arc::clone(&rabbit) as Arc<dyn Publisher>, Some(rabbit))
        }
    }
}
