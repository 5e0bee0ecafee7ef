# The orchestrator as a Nomad service job, written by `swath nomad hcl` with the worker jobs:
# `swath serve` with the Nomad executor, registering and dispatching the worker jobs of the
# other files in this directory, which find it as the consul service "swath".
# Secrets (database URL, Nomad token) come from the Nomad variable `nomad/jobs/swath`, never
# from this file.
job "swath" {
  type        = "service"
  namespace   = "default"
  datacenters = ["*"]
  node_pool   = "default"

  group "orchestrator" {
    count = 1

    network {
      port "http" {
        static = 8080
      }
    }

    service {
      name     = "swath"
      port     = "http"
      provider = "consul"
    }

    task "serve" {
      driver = "raw_exec"

      config {
        command = "/usr/local/bin/swath"
        args    = ["serve"]
      }

      template {
        destination = "secrets/swath.env"
        env         = true
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/swath" }}
          SWATH_DATABASE_URL={{ .database_url }}
          SWATH_NOMAD_TOKEN={{ .nomad_token }}
          {{ end }}
        EOT
      }

      env {
        SWATH_EXECUTOR               = "nomad"
        SWATH_LISTEN                 = "0.0.0.0:8080"
        SWATH_NOMAD_SERVICE_PROVIDER = "consul"
        SWATH_NOMAD_SERVICE_NAME     = "swath"
        SWATH_ORCHESTRATOR_URL       = "http://swath.service.consul:8080"
        SWATH_NOMAD_ADDR             = "http://${attr.unique.network.ip-address}:4646"
        SWATH_NOMAD_NAMESPACE        = "default"
        SWATH_NOMAD_JOB_PREFIX       = "swath-worker"
        SWATH_LOG_FORMAT             = "json"
      }

      resources {
        cpu    = 1000
        memory = 512
      }

      kill_timeout = "60s"
    }
  }
}
