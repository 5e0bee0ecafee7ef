# Worker job of flavor hm.medium: written by `swath nomad hcl`; swath registers the same job
# itself at start-up. Dispatched once per job attempt; the worker token arrives as the payload.
job "swath-worker-hm.medium" {
  type        = "batch"
  namespace   = "default"
  datacenters = ["*"]
  node_pool   = "default"
  priority    = 50

  parameterized {
    payload       = "required"
    meta_required = ["job_id", "attempt", "job_type"]
    meta_optional = []
  }

  meta {
    swath_flavor = "hm.medium"
  }

  # The kind of VM this flavor's request is sized for.
  constraint {
    attribute = "${attr.platform.aws.instance-type}"
    operator  = "="
    value     = "hm.medium"
  }

  group "attempt" {
    count = 1

    restart {
      attempts = 0
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    ephemeral_disk {
      size = 40960
    }

    task "worker" {
      driver = "raw_exec"

      config {
        command = "/usr/local/bin/swath-worker"
        args    = ["run"]
      }

      # The orchestrator's address, from the Nomad service it registers.
      template {
        destination = "secrets/orchestrator.env"
        env         = true
        change_mode = "noop"
        data        = <<-EOT
          {{ range nomadService "swath" }}
          SWATH_WORKER_ORCHESTRATOR_URL=http://{{ .Address }}:{{ .Port }}
          {{ end }}
        EOT
      }

      env {
        SWATH_WORKER_WORK_ROOT         = "/work"
        SWATH_WORKER_KILL_TIMEOUT_SECS = "30"
        SWATH_WORKER_TOKEN_FILE        = "${NOMAD_TASK_DIR}/attempt-token"
      }

      dispatch_payload {
        file = "attempt-token"
      }

      resources {
        cpu    = 50
        memory = 10000
      }

      kill_timeout = "30s"
    }
  }
}
