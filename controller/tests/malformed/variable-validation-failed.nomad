variable "replicas" {
  type    = number
  default = 0
  validation {
    condition     = var.replicas > 0
    error_message = "replicas must be at least 1"
  }
}

job "web" {
  group "web" {
    count = var.replicas
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
