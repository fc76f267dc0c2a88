job "web" {
  group "web" {
    task "api" {
      driver = "docker"
      config {
        image = "traefik/whoami"
        args  = [format("%999999999999d", 1), indent(99999999999, "a\nb")]
      }
    }
  }
}
