# Provider and state.
#
# State lives in a GCS bucket that the operator creates once (versioned, in the same project); it is
# given at init time, so nothing here hard-codes it:
#   terraform init -backend-config="bucket=<state bucket>" -backend-config="prefix=svyaz"
# (cloudbuild.yaml passes the _TF_STATE_BUCKET substitution). Linting without a bucket:
#   terraform init -backend=false && terraform validate

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }

  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = merge(var.labels, {
    app = var.name_prefix
  })
}
