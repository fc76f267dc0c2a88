job "web" {
  group "web" {
    cout = 2
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
