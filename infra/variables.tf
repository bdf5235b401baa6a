variable "project_id" {
  description = "Google Cloud project id that hosts the whole service (functions, Firestore, Pub/Sub, secrets)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id: 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  description = "Region of the Cloud Functions, their source bucket and Artifact Registry images, e.g. europe-west1."
  type        = string
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region name such as europe-west1 (not a zone, not a multi-region)."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (topics, functions, service accounts, secrets, bucket). At most 12 characters so service account ids stay within 30."
  type        = string
  default     = "svyaz"

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,10}[a-z0-9])?$", var.name_prefix))
    error_message = "name_prefix must be 1-12 lowercase letters, digits or hyphens, start with a letter and not end with a hyphen."
  }
}

variable "firestore_location" {
  description = <<-EOT
    Location of the Firestore database (a region such as europe-west3, or a multi-region: eur3, nam5).
    It cannot be changed after creation.

    Russian law (152-FZ, art. 18 part 5) requires personal data of Russian citizens to be recorded,
    stored and updated in databases located in Russia. Google Cloud has no region in Russia: NO value of
    this variable satisfies that rule. A deployment that collects data of Russian citizens must either
    keep the primary database of that data in Russia (outside this stack; this stack then holds a copy
    at most) or have a lawyer's written opinion before going live. Do not pick a location without that
    decision. For EU residents (GDPR) an EU location (eur3, europe-west*) keeps data in the EU.
  EOT
  type        = string

  validation {
    condition     = can(regex("^([a-z]+-[a-z]+[0-9]+|nam5|nam7|eur3)$", var.firestore_location))
    error_message = "firestore_location must be a Firestore region (e.g. europe-west3) or multi-region (eur3, nam5, nam7)."
  }
}

variable "firestore_database" {
  description = "Firestore database id. \"(default)\" or a named database (lowercase letters, digits, hyphens; 4-63 chars). Passed to the functions as SVYAZ_FIRESTORE_DATABASE."
  type        = string
  default     = "(default)"

  validation {
    condition     = var.firestore_database == "(default)" || can(regex("^[a-z][a-z0-9-]{2,61}[a-z0-9]$", var.firestore_database))
    error_message = "firestore_database must be \"(default)\" or 4-63 lowercase letters, digits or hyphens starting with a letter."
  }
}

variable "source_archive" {
  description = "Path (relative to the directory terraform runs in, infra/) of the functions source zip built by `svyaz package --out dist/functions.zip`. The archive is byte-reproducible, so its MD5 changes (and the functions redeploy) only when the code or the pinned requirements change."
  type        = string
  default     = "../dist/functions.zip"

  validation {
    condition     = endswith(var.source_archive, ".zip")
    error_message = "source_archive must be the path of a .zip file."
  }
}

variable "qr_allowed_hosts" {
  description = "Hosts the QR landing may redirect to (SVYAZ_QR_ALLOWED_HOSTS), e.g. [\"shop.example.ru\"]. Bare host names: no scheme, path or port. Required: with none, every printed QR code would answer 404."
  type        = list(string)

  validation {
    condition     = length(var.qr_allowed_hosts) > 0
    error_message = "qr_allowed_hosts must list at least one host (the brand's site, e.g. [\"shop.example.ru\"]): with none, every QR code answers 404."
  }

  validation {
    condition = alltrue([
      for host in var.qr_allowed_hosts : can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", host))
    ])
    error_message = "Each qr_allowed_hosts entry must be a lowercase host name such as shop.example.ru (no scheme, path or port)."
  }
}

variable "max_instance_count" {
  description = "Upper bound of instances per function (caps cost and the write rate a burst can put on Firestore)."
  type        = number
  default     = 20

  validation {
    condition     = var.max_instance_count >= 1 && var.max_instance_count <= 1000 && floor(var.max_instance_count) == var.max_instance_count
    error_message = "max_instance_count must be a whole number between 1 and 1000."
  }
}

variable "function_memory" {
  description = "Memory of each function instance (Cloud Run functions notation, e.g. 256M, 512M, 1G)."
  type        = string
  default     = "512M"

  validation {
    condition     = contains(["256M", "512M", "1G", "2G", "4G"], var.function_memory)
    error_message = "function_memory must be one of 256M, 512M, 1G, 2G, 4G."
  }
}

variable "labels" {
  description = "Labels added to every resource that supports them (the provider adds app = name_prefix)."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for key, value in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", key)) && can(regex("^[a-z0-9_-]{0,63}$", value))
    ])
    error_message = "Label keys must start with a lowercase letter; keys and values may hold only lowercase letters, digits, _ and - (max 63)."
  }
}

# The brand's domain (loadbalancer.tf).
variable "lb_domains" {
  description = "The brand's domain(s) served by the HTTPS load balancer, e.g. [\"shop.example.ru\"]. Empty (the default): no load balancer; use the functions' own URLs."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for host in var.lb_domains : can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", host))
    ])
    error_message = "Each lb_domains entry must be a lowercase host name such as shop.example.ru (no scheme, path or port)."
  }
}

variable "lb_default_service" {
  description = "Self link of the backend service or backend bucket that serves every other path of the domain (the brand's site). Empty: other paths get the QR landing's 404 page."
  type        = string
  default     = ""

  validation {
    condition     = var.lb_default_service == "" || can(regex("^(https://www.googleapis.com/compute/v1/)?projects/[^/]+/global/(backendServices|backendBuckets)/[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.lb_default_service))
    error_message = "lb_default_service must be the self link of a global backend service or backend bucket (projects/<p>/global/backendServices/<name>)."
  }
}
